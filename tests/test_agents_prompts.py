"""Every prompt's placeholders are exactly the inputs its node supplies; overrides; dry-run helpers."""

import pytest

from agents import answerer, asker, critic, docqa, responder
from agents.errors import ConfigError
from agents.context import Context, placeholders, render
from graphs.registry import calls_per_item, render_examples
from graphs.state import WorkItem

MODULES = [asker, answerer, responder, critic, docqa]
ALL_PROMPTS = [(m.__name__, name) for m in MODULES for name in m.PROMPTS]


@pytest.mark.parametrize(("module", "name"), ALL_PROMPTS)
def test_placeholders_equal_the_declared_inputs(module, name):
    mod = next(m for m in MODULES if m.__name__ == module)
    assert placeholders(mod.PROMPTS[name]) == set(mod.PROMPT_INPUTS[name])
    assert mod.PROMPTS[name] == mod.PROMPTS[name].strip()  # no indentation or blank lines leaking in
    assert not any(line.startswith("    ") for line in mod.PROMPTS[name].splitlines())


def test_every_prompt_is_covered():
    assert len(ALL_PROMPTS) == 23
    for m in MODULES:
        assert set(m.PROMPTS) == set(m.PROMPT_INPUTS)


def test_render_refuses_inputs_other_than_the_declared_ones():
    with pytest.raises(ValueError, match="declared"):
        asker.fill(Context(clients={}), "QUESTION_BY_CHUNK_PROMPT", chunk="段落")  # `avoid` missing


def test_recipe_override_is_used_and_may_use_a_subset():
    ctx = Context(clients={}, recipe={"prompts": {"QUESTION_BY_CHUNK_PROMPT": "就这段提问：{chunk}"}})
    assert asker.fill(ctx, "QUESTION_BY_CHUNK_PROMPT", chunk="石猴出世。", avoid="（无）") == "就这段提问：石猴出世。"


def test_an_answer_prompt_override_without_conversation_still_shows_the_earlier_turns():
    from agents.schemas import Turn

    state = {"question": "它后来怎样了？", "passages": [], "turns": [Turn(input="黑熊精住在哪里？", output="黑风洞。")]}
    built_in = [m["content"] for m in answerer.answer_messages(Context(clients={}), state)[0]]
    assert len(built_in) == 2 and "用户：黑熊精住在哪里？\n助手：黑风洞。" in built_in[1]  # in <conversation>
    ctx = Context(clients={}, recipe={"prompts": {"ANSWER_PROMPT": "资料：{passages}\n问题：{question}"}})
    messages = answerer.answer_messages(ctx, state)[0]
    assert [(m["role"], m["content"]) for m in messages[1:3]] == [("user", "黑熊精住在哪里？"), ("assistant", "黑风洞。")]
    assert messages[-1]["content"].endswith("问题：它后来怎样了？")
    assert "黑熊精住在哪里？" not in answerer.sent_prompt(messages, state)  # data, not instructions (leak rule)


def test_override_with_an_unknown_placeholder_is_a_clear_config_error():
    ctx = Context(clients={}, recipe={"prompts": {"ANSWER_PROMPT": "{question} {passage}"}})
    with pytest.raises(ConfigError, match=r"ANSWER_PROMPT.*\['passage'\].*conversation, passages, question"):
        answerer.fill(ctx, "ANSWER_PROMPT", question="问", passages="资料", conversation="（无）")


def test_inserted_data_with_braces_is_not_reformatted():
    assert render(Context(clients={}), "P", "<q>{q}</q>", {"q"}, q="{name} 是什么") == "<q>{name} 是什么</q>"


TIANJI = {"system_prompt": "你是天机。", "input_templates": ["祝{role}{scene}"],
          "styles": {"小红书": {"suffix": "，小红书风格", "instruction": "活泼，1-2 个 emoji。", "max_chars": 120,
                             "few_shot": [{"input": "祝妹妹生日", "output": "妹妹生日快乐🎂"}]}},
          "random_constraints": ["不要出现“祝你”"]}


@pytest.mark.parametrize(("graph", "key", "payload", "recipe", "expected"), [
    ("qa", {"aspect": "主要角色", "n": 1}, {"aspect": "主要角色", "followups": 1}, {"system_prompt": "你是悟了悟了。"},
     {"QUESTION_BY_ASPECT_PROMPT", "FOLLOWUP_BY_ASPECT_PROMPT", "ANSWER_PROMPT", "ANSWER_REVISION_PROMPT", "JUDGE_QA_PROMPT"}),
    ("qa", {"chunk": 3}, {"chunk": "石猴出世。"}, {},
     {"QUESTION_BY_CHUNK_PROMPT", "ANSWER_PROMPT", "ANSWER_REVISION_PROMPT", "JUDGE_QA_PROMPT"}),
    ("persona", {"role": "妹妹", "scene": "生日", "style": "小红书", "variant": 0}, {"humanize": True}, TIANJI,
     {"SCENE_OPENING_PROMPT", "STYLED_REPLY_PROMPT", "STYLED_REVISION_PROMPT", "JUDGE_PERSONA_PROMPT"}),
    ("dialogue", {"emotion": "焦虑", "area": "学业"}, {"turns": [2, 3]}, {"counsellor_system_prompt": "你是咨询师。"},
     {"SEEKER_OPENING_PROMPT", "SEEKER_NEXT_PROMPT", "COUNSELLOR_PROMPT", "COUNSELLOR_TURN_PROMPT",
      "COUNSELLOR_REVISION_PROMPT",
      "JUDGE_DIALOGUE_PROMPT"}),
])
def test_render_examples_renders_each_prompt_fully(graph, key, payload, recipe, expected):
    item = WorkItem.for_recipe("r", graph, key=key, payload=payload)
    examples = render_examples(item, Context(clients={}, recipe=recipe))
    assert set(examples) == expected
    for text in examples.values():
        assert "{" not in text.replace("{name}", "")  # every placeholder filled
    if graph == "persona":
        styled = examples["STYLED_REPLY_PROMPT"]
        assert "<request>祝妹妹生日，小红书风格</request>" in styled
        assert "妹妹生日快乐🎂" in styled and "另外：不要出现“祝你”" in styled and "不超过 120 字" in styled


def test_calls_per_item_best_case():
    qa = WorkItem.for_recipe("w", "qa", key={"n": 1}, payload={"followups": 0})
    dialogue = WorkItem.for_recipe("e", "dialogue", key={"n": 1}, payload={"turns": [3, 6]})
    persona = WorkItem.for_recipe("t", "persona", key={"role": "爷爷", "scene": "生日"})
    assert calls_per_item(qa) == {"asker": 1, "answerer": 1, "critic": 1}
    assert calls_per_item(dialogue) == {"asker": 3, "responder": 3, "critic": 1}
    assert calls_per_item(persona) == {"asker": 0, "responder": 1, "critic": 1}
