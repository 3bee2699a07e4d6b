"""Preference data from a real revise loop (the local server's critic sends every first draft back):
DPO pairs and KTO tags checked against LLaMA-Factory's ShareGPT schema, XTuner's preference records
against XTuner's own loader and tokenizer."""

import json
import subprocess
from pathlib import Path

import pytest

from agents.schemas import Sample, Turn, draft_context
from finetune.preference import is_artifact_only, kto_records, preference_pairs
from tests.test_finetune_pipeline import xtuner_env  # noqa: F401 - the fixture that builds .venv-xtuner
from tests.test_reasoning import REPO, accepted, run_wulewule, zaoshu

# ---------------------------------------------------------------- LLaMA-Factory's schema
# Written from LLaMA-Factory's data/README.md (sharegpt preference / KTO datasets) and the checks its
# SharegptDatasetConverter applies (src/llamafactory/data/converter.py): after an optional leading
# system message, roles alternate user/assistant starting with the user; a ranking example has an
# odd number of messages and `chosen`/`rejected` assistant messages; a KTO example an even number
# and a boolean tag. A record that fails these is skipped by LLaMA-Factory with a warning.


def llamafactory_problem(record: dict, entry: dict) -> str:
    cols, tags = entry["columns"], entry.get("tags", {})
    role, content = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user, assistant = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
    if entry.get("formatting") != "sharegpt":
        return "not sharegpt formatting"
    messages = record.get(cols["messages"])
    if not isinstance(messages, list):
        return "messages column missing"
    if messages and messages[0].get(role) == tags.get("system_tag", "system"):
        messages = messages[1:]
    for i, m in enumerate(messages):
        if m.get(role) != (user, assistant)[i % 2] or not isinstance(m.get(content), str):
            return f"message {i}: invalid role tag"
    if "system" in cols and not isinstance(record.get(cols["system"]), str):
        return "system column is not a string"
    if entry.get("ranking"):
        if len(messages) % 2 == 0:
            return "ranking example with an even message count"
        for side in ("chosen", "rejected"):
            m = record.get(cols[side])
            if not isinstance(m, dict) or m.get(role) != assistant or not isinstance(m.get(content), str):
                return f"{side} is not an assistant message"
        return ""
    if "kto_tag" in cols:
        if len(messages) % 2 != 0:
            return "kto example with an odd message count"
        return "" if isinstance(record.get(cols["kto_tag"]), bool) else "kto_tag is not a bool"
    return "neither ranking nor kto"


def read_export(run: Path, fmt: str) -> tuple[list[dict], dict]:
    folder = run / "exports" / fmt
    records = [json.loads(x) for x in (folder / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8")) if fmt != "xtuner-dpo" else {}
    return records, info


@pytest.fixture
def run(tmp_path, monkeypatch):
    return run_wulewule(tmp_path, monkeypatch)


def different_drafts(samples):
    """The sent-back drafts whose words differ from the turn as accepted."""
    return [d for s in samples for d in s["meta"]["drafts"] if d["decision"] != "accept"
            and d["text"].strip() != s["turns"][d["turn"]]["output"].strip()]


def test_dpo_pairs_from_the_revise_loop_fit_llamafactory(run):
    samples = accepted(run)
    drafts = [d for s in samples for d in s["meta"]["drafts"]]
    sent_back = [d for d in drafts if d["decision"] != "accept"]
    assert len(sent_back) >= 6 and {"PREAMBLE", "UNGROUNDED"} <= {c for d in sent_back for c in d["codes"]}
    differing = different_drafts(samples)  # a draft the model rewrote word for word makes no pair

    assert zaoshu("export", run, "--format", "dpo") == 0
    records, info = read_export(run, "dpo")
    (name, entry), = info.items()
    assert entry["ranking"] is True and entry["file_name"] == "all.jsonl"
    assert entry["columns"] == {"messages": "conversations", "system": "system", "chosen": "chosen", "rejected": "rejected"}
    assert [llamafactory_problem(r, entry) for r in records] == [""] * len(records)
    assert len(records) == len(differing) >= 6  # every other sent-back draft of an accepted turn is one pair
    answer_to = {tuple(x for t in s["turns"][:i] for x in (t["input"], t["output"])) + (turn["input"],): turn["output"]
                 for s in samples for i, turn in enumerate(s["turns"])}  # the conversation so far → the accepted answer
    for record in records:
        question = record["conversations"][-1]["value"]
        assert record["chosen"]["value"] == answer_to[tuple(m["value"] for m in record["conversations"])]
        assert record["rejected"]["value"] != record["chosen"]["value"]
        assert record["rejected"]["value"] in {d["text"] for d in sent_back if d["input"] == question}
        assert "<think>" not in json.dumps(record, ensure_ascii=False)
    preamble = [r for r in records if r["rejected"]["value"].startswith("好的，以下是回答：")]
    assert preamble and all(not r["chosen"]["value"].startswith("好的") for r in preamble)

    assert zaoshu("export", run, "--format", "dpo", "--skip-artifacts") == 0
    kept, _ = read_export(run, "dpo")
    assert len(kept) == sum(not is_artifact_only(d["codes"]) for d in differing) < len(records)
    assert not any(r["rejected"]["value"].startswith("好的，以下是回答：") for r in kept)


def test_kto_tags_accepted_samples_true_and_sent_back_drafts_false(run):
    assert zaoshu("export", run, "--format", "kto", "--split", "0.5") == 0
    folder = run / "exports/kto"
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    records = []
    for split in ("train", "test"):
        entry = info[f"run_{split}_kto"]
        assert entry["columns"]["kto_tag"] == "kto_tag" and "ranking" not in entry
        rows = [json.loads(x) for x in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [llamafactory_problem(r, entry) for r in rows] == [""] * len(rows)
        records += rows
    samples = accepted(run)
    true = [r for r in records if r["kto_tag"]]
    false = [r for r in records if not r["kto_tag"]]
    assert len(true) == len(samples) == 6
    assert len(false) == len(different_drafts(samples))
    answer_to = {tuple(x for t in s["turns"][:i] for x in (t["input"], t["output"])) + (turn["input"],): turn["output"]
                 for s in samples for i, turn in enumerate(s["turns"])}
    for r in false:  # a negative answers an accepted conversation, with other words than the accepted turn
        *before, last = [m["value"] for m in r["conversations"]]
        assert answer_to[tuple(before)] != last


def test_a_rejected_sample_gives_kto_negatives_but_no_pairs():
    earlier = [Turn(input="你好", output="你好呀。")]
    drafts = [{"turn": 1, "input": "天命人是谁？", "text": "不知道。", "decision": "revise", "codes": ["UNGROUNDED"],
               "by": "judge", "context": draft_context(earlier, "天命人是谁？")},
              {"turn": 1, "input": "天命人是谁？", "text": "还是不知道。", "decision": "revise", "codes": ["IRRELEVANT"],
               "by": "judge", "context": draft_context(earlier, "天命人是谁？")},
              {"turn": 1, "input": "天命人是谁？", "text": "旧对话里的草稿。", "decision": "revise", "codes": ["IRRELEVANT"],
               "by": "judge", "context": "0123456789ab"}]  # the dialogue was cut back: another context
    rejected = Sample(id="r", recipe="r", kind="dialogue", system="S",
                      turns=[*earlier, Turn(input="天命人是谁？", output="还是不知道。")], meta={"drafts": drafts})
    assert preference_pairs([], skip_artifacts=False) == []
    rows = kto_records([], [rejected])
    assert [(r["conversations"][-1]["value"], r["kto_tag"]) for r in rows] == [("不知道。", False), ("还是不知道。", False)]
    assert rows[0]["conversations"][:2] == [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好呀。"}]


def test_a_run_without_drafts_is_a_one_line_error(tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    sample = Sample(id="x", recipe="r", kind="qa", turns=[Turn(input="问", output="答。")])
    (run / "accepted.jsonl").write_text(sample.model_dump_json() + "\n", encoding="utf-8")
    assert zaoshu("export", run, "--format", "dpo") == 1
    err = capsys.readouterr().err
    assert "keeps no critic drafts" in err and "Traceback" not in err and not (run / "exports/dpo").exists()


def test_xtuner_dpo_records(run):
    assert zaoshu("export", run, "--format", "xtuner-dpo", "--with-reasoning") == 0
    records, _ = read_export(run, "xtuner-dpo")
    assert len(records) == len(different_drafts(accepted(run)))
    for r in records:
        assert set(r) == {"prompt", "chosen", "rejected"}
        assert r["prompt"][0]["role"] == "system" and r["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in r["chosen"] + r["rejected"]] == ["assistant", "assistant"]
        assert r["chosen"][0]["content"].startswith("<think>\n用户问的是")  # --with-reasoning reaches pairs too


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.mark.slow
def test_xtuner_dpo_passes_xtuner_preference_pipeline(xtuner_env, run, tmp_path):
    """XTuner 0.2.0's own `load_jsonl_dataset` + `preference_dataset.tokenize` on every pair."""
    from finetune.validate import validate_preference_file

    python = xtuner_env
    tok = tmp_path / "tok"
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
              f"from tests.tiny_models import build_tokenizer; t = build_tokenizer(Path({str(tok)!r}), [], 'qwen2'); "
              f"t.chat_template = {CHATML!r}; t.save_pretrained({str(tok)!r})")
    subprocess.run([str(python), "-c", script], check=True, capture_output=True, timeout=300)
    assert zaoshu("export", run, "--format", "xtuner-dpo") == 0
    report = validate_preference_file(run / "exports/xtuner-dpo/all.jsonl", tok, python, max_length=4096)
    assert report.ok, report.lines()
    assert report.records == len(read_export(run, "xtuner-dpo")[0])
    assert zaoshu("finetune", "validate-dpo", run / "exports/xtuner-dpo/all.jsonl", "--tokenizer", tok,
                  "--venv", python.parents[1]) == 0

    broken = tmp_path / "broken.jsonl"
    good = (run / "exports/xtuner-dpo/all.jsonl").read_text(encoding="utf-8").splitlines()[0]
    bad = json.loads(good)
    bad["prompt"] = bad["prompt"][:-1]  # no user message at the end
    broken.write_text(good + "\n" + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    report = validate_preference_file(broken, tok, python)
    assert report.lines() == ["line 2: the prompt does not end with the user's message"]


def test_stats_describes_the_dpo_and_xtuner_dpo_exports(run, capsys):
    """`zaoshu stats` on zaoshu's own dpo / xtuner-dpo export called every pair a bad line ("records 0 · bad
    lines 4", each "ends with a user message that has no answer" or "unrecognised record format")."""
    pairs = len(different_drafts(accepted(run)))
    for fmt in ("dpo", "xtuner-dpo"):
        assert zaoshu("export", run, "--format", fmt) == 0
        records, _ = read_export(run, fmt)
        chosen = [r["chosen"]["value"] if fmt == "dpo" else r["chosen"][0]["content"] for r in records]
        capsys.readouterr()
        assert zaoshu("stats", run / "exports" / fmt / "all.jsonl", "--json") == 0
        stats = json.loads(capsys.readouterr().out)
        assert (stats["records"], stats["bad_lines"], stats["formats"]) == (pairs, [], {fmt: pairs})
        assert stats["output_chars"]["max"] == max(map(len, chosen)) and stats["with_system"] == pairs
        # and merge reads the same: each pair's chosen answer is a sample (it had written 0, exit 0)
        merged = run.parent / f"merged-{fmt}"
        assert zaoshu("merge", run / "exports" / fmt / "all.jsonl", "--out", merged) == 0
        samples = [json.loads(x) for x in (merged / "accepted.jsonl").read_text(encoding="utf-8").splitlines()]
        assert {s["turns"][-1]["output"] for s in samples} == set(chosen)  # (a sample revised twice: 2 pairs, 1 sample)
