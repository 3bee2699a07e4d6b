"""The critic beyond the rules: the judge's scores gate its verdict, score keys are validated, the
judge switch (off | on | strict), and the leak rules fed by what produced each draft, through the
real nodes and graphs with fake models."""

from __future__ import annotations

import typing

import pytest
from langgraph.runtime import Runtime

from agents import critic, judge
from agents.errors import ConfigError
from agents.schemas import GraphName, ReasonCode, Turn
from agents.settings import load_settings
from agents.context import Context
from graphs.dialogue import build_dialogue_graph
from graphs.persona import build_persona_graph
from graphs.qa import build_qa_graph
from graphs.state import WorkItem
from tests.fakes import ALL_SCORES, FakeKB, answer, fake_clients, message, passage, question, reply, verdict

ASPECT = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "游戏概览", "n": 1}, payload={"aspect": "游戏概览"})
QUESTION = "《黑神话：悟空》是一款什么样的游戏？"
GOOD_ANSWER = "《黑神话：悟空》是游戏科学开发的一款以《西游记》为背景的单机动作角色扮演游戏。"
PASSAGE = passage("《黑神话：悟空》是游戏科学开发的单机动作角色扮演游戏，以《西游记》为背景。")


def run(ctx: Context) -> Runtime:
    return Runtime(context=ctx, stream_writer=lambda e: None)


def qa_state(draft: str = GOOD_ANSWER, **extra) -> dict:
    return {"item": ASPECT, "question": QUESTION, "draft": draft, "passages": [PASSAGE], **extra}


def scored(decision: str = "accept", codes: tuple[str, ...] = (), **scores: float) -> dict:
    return {**verdict(decision, codes), "scores": {**ALL_SCORES, **scores}}


# ---- the score gate ---------------------------------------------------------------------------

async def test_low_grounding_with_a_malformed_key_and_accept_is_a_revise():
    """What the small model actually returned: {" grounding": 0.5, "relevance": 0.8} with accept."""
    reply_ = {"reasons": ["切合问题"], "decision": "accept", "reason_codes": [],
              "scores": {" grounding": 0.5, "relevance": 0.8, "Style ": 0.9}, "feedback": None}
    clients = fake_clients(critic=[reply_])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients)))
    assert out["outcome"] == "revise" and out["revisions"] == 1
    assert out["verdict"].reason_codes == [ReasonCode.UNGROUNDED]
    assert out["verdict"].scores == {"grounding": 0.5, "relevance": 0.8, "style": 0.9}
    assert out["meta"]["judge_gate"] == {"mode": "on", "min_score": 0.6, "judge_decision": "accept",
                                         "low_scores": {"grounding": 0.5}}
    assert out["meta"]["critic_history"][-1] == {"decision": "revise", "codes": ["UNGROUNDED"], "by": "judge"}
    assert "grounding 得分 0.5 低于 0.6" in out["verdict"].reasons[-1]


async def test_low_relevance_is_irrelevant_and_the_threshold_is_settable():
    clients = fake_clients(critic=[scored(relevance=0.7)])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients, judge_min_score=0.8)))
    assert out["outcome"] == "revise" and out["verdict"].reason_codes == [ReasonCode.IRRELEVANT]
    clients = fake_clients(critic=[scored(relevance=0.7)])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients, judge_min_score=0.6)))
    assert out["outcome"] == "accept"


async def test_a_reply_missing_a_score_key_is_re_asked_then_used():
    missing = {**verdict("accept"), "scores": {"grounding": 0.9}}
    clients = fake_clients(critic=[missing, scored()])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients)))
    assert out["outcome"] == "accept" and len(clients["critic"].calls) == 2
    reask = clients["critic"].calls[1][-1]["content"]
    assert "relevance" in reask and "style" in reask  # the validation error names what is missing


async def test_a_judge_that_never_gives_the_scores_is_format():
    clients = fake_clients(critic=[{**verdict("accept"), "scores": {}}])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients, structured_attempts=2)))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.FORMAT]
    assert len(clients["critic"].calls) == 2


async def test_scores_outside_zero_to_one_are_re_asked():
    clients = fake_clients(critic=[scored(grounding=8), scored()])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients)))
    assert out["outcome"] == "accept" and len(clients["critic"].calls) == 2


async def test_the_judge_reject_stays_a_reject():
    clients = fake_clients(critic=[scored("reject", ("UNANSWERABLE",), grounding=0.1)])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients)))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.UNANSWERABLE]


@pytest.mark.parametrize("graph", typing.get_args(GraphName))
async def test_a_reject_naming_no_code_gets_its_graphs_default_on_every_graph(graph):
    """The 0.5B model's judge rejected a docqa answer with reason_codes [] and the item failed with
    KeyError: 'docqa' (no default code for the document recipe's graph); every graph has one now."""
    item = WorkItem.for_recipe("docqa" if graph == "docqa" else "wulewule", graph, key={"n": 1}, payload={})
    assert graph in critic.DEFAULT_CODE
    if graph == "docqa":  # its answers go through the QA critic
        clients = fake_clients(critic=[scored("reject", grounding=0.1)])
        out = await critic.critique_answer(qa_state(item=item), run(Context(clients=clients)))
        assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.UNGROUNDED]


async def test_a_bare_noun_phrase_never_reaches_the_judge():
    clients = fake_clients(critic=[scored()])
    out = await critic.critique_answer(qa_state("单机动作角色扮演游戏"), run(Context(clients=clients)))
    assert out["outcome"] == "revise" and ReasonCode.INCOMPLETE_ANSWER in out["verdict"].reason_codes
    assert not clients["critic"].calls


# ---- the judge switch -------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "judge_reply", "outcome", "judge_calls"), [
    ("off", scored(grounding=0.1), "accept", 0),  # rules only: the judge is never asked
    ("on", scored(), "accept", 1),
    ("on", scored(style=0.4), "accept", 1),  # style does not gate in "on"
    ("on", scored("accept", ("STYLE_MISMATCH",)), "accept", 1),
    ("strict", scored(), "accept", 1),
    ("strict", scored(style=0.4), "revise", 1),  # every score must pass
    ("strict", scored("accept", ("STYLE_MISMATCH",)), "revise", 1),  # any code is a revise
    ("strict", scored("revise"), "revise", 1),
])
async def test_judge_modes_on_a_qa_answer(mode, judge_reply, outcome, judge_calls):
    clients = fake_clients(critic=[judge_reply])
    out = await critic.critique_answer(qa_state(), run(Context(clients=clients, judge=mode)))
    assert out["outcome"] == outcome and len(clients["critic"].calls) == judge_calls


async def test_judge_off_still_runs_every_rule():
    out = await critic.critique_answer(qa_state("根据提供的资料，这是一款动作游戏。"), run(Context(clients=fake_clients(),
                                                                                       judge="off")))
    assert out["outcome"] == "revise" and ReasonCode.CONTEXT_LEAK in out["verdict"].reason_codes


async def test_judge_off_records_that_the_rules_decided():
    out = await critic.critique_answer(qa_state(), run(Context(clients=fake_clients(), judge="off")))
    assert out["meta"]["judge"] == "off" and out["meta"]["critic_history"][-1]["by"] == "rules"


async def test_an_unknown_judge_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="critic.judge must be one of off, on, strict"):
        await critic.critique_answer(qa_state(), run(Context(clients=fake_clients(critic=[scored()]), judge="lenient")))


async def test_judge_modes_on_a_dialogue():
    item = WorkItem.for_recipe("emollm", "dialogue", key={"n": 1}, payload={"area": "学业", "emotion": "焦虑"})
    turns = [Turn(input="我最近总是焦虑，晚上睡不着。", output="听起来焦虑已经影响到你的睡眠了。能说说最担心的是什么吗？")]
    off = await critic.critique_dialogue({"item": item, "turns": turns}, run(Context(clients=fake_clients(), judge="off")))
    assert off["outcome"] == "accept"
    low = {**scored(), "scores": {**ALL_SCORES, "coherence": 0.3}, "turn": 1}
    clients = fake_clients(critic=[low])
    on = await critic.critique_dialogue({"item": item, "turns": turns}, run(Context(clients=clients)))
    assert on["outcome"] == "revise" and on["verdict"].reason_codes == [ReasonCode.CONTRADICTION]
    assert on["draft"] == turns[0].output and on["turns"] == []  # cut back to the named turn


# ---- the judge prompt ---------------------------------------------------------------------------

def test_the_persona_judge_prompt_asks_about_scene_addressee_examples():
    recipe = {"styles": {"正常": {"instruction": "礼貌自然。", "few_shot": [{"input": "x", "output": "外婆，重阳节快乐！"}]}}}
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "李总", "scene": "生日", "style": "正常"})
    prompt = critic.persona_judge_prompt(Context(clients={}, recipe=recipe), item, "祝李总生日", "李总，生日快乐！")
    assert "是不是写给对象本人的" in prompt and "是否切合场景" in prompt and "照抄" in prompt
    assert prompt.rstrip().splitlines()[-3].startswith("<target>对象：李总；场景：生日；风格：正常")  # item values last
    assert "<example>外婆，重阳节快乐！</example>" in prompt
    assert "persona、relevance、style" in prompt


def test_the_qa_judge_prompt_asks_about_grounding_and_context_leaks():
    assert "grounding" in critic.JUDGE_QA_PROMPT and "根据提供的资料" in critic.JUDGE_QA_PROMPT
    assert "完整" in critic.JUDGE_QA_PROMPT


# ---- leaks through the real graphs ----------------------------------------------------------------

RECIPE = {
    "system_prompt": "你是天机，一个懂得人情世故的祝福语助手。",
    "input_templates": ["帮我写一段给{role}的{scene}祝福"],
    "styles": {"正常": {"suffix": "", "min_chars": 10, "max_chars": 120, "emoji": None,
                        "instruction": "语气真诚、有礼貌，像平时发给对方的一条消息；用词自然，不堆砌成语。",
                        "few_shot": [{"input": "帮我写一段给奶奶的中秋节祝福",
                                      "output": "奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好，月饼少吃甜的。"}]}},
    "roles": [{"name": "李总", "relation": "elder"}],
}
PERSONA = WorkItem.for_recipe("tianji", "persona", key={"role": "李总", "scene": "生日", "style": "正常"})


async def run_persona(responder: list, critic_replies: list, **kw) -> tuple[dict, dict]:
    clients = fake_clients(responder=responder, critic=critic_replies)
    ctx = Context(clients=clients, recipe=RECIPE, **kw)
    return await build_persona_graph().compile().ainvoke({"item": PERSONA}, context=ctx), clients


async def test_every_rule_runs_again_on_every_revision():
    copied = "李总，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好。"
    leaked = "李总，生日快乐！用词自然，不堆砌成语，像平时发给对方的一条消息。"  # the style instruction
    fed_back = "李总，生日快乐！请删掉照搬的要求，只写正文，祝您身体健康。"  # the feedback it was just sent
    good = "李总，生日快乐！这一年跟着您做项目学到了很多，祝您身体健康，事业蒸蒸日上。"
    out, clients = await run_persona([reply(copied), reply(leaked), reply(fed_back), reply(good)], [scored()],
                                     max_revisions=3)
    history = [(h["codes"], h["by"]) for h in out["sample"].meta["critic_history"]]
    assert history[0][0][0] == "FEWSHOT_COPY" and "PROMPT_LEAK" in history[1][0]
    assert "FEEDBACK_LEAK" in history[2][0] and history[3] == ([], "judge")
    assert out["status"] == "accepted" and out["sample"].turns[0].output == good
    assert len(clients["critic"].calls) == 1  # the judge saw only the clean draft
    assert "照抄了示例" in clients["responder"].calls[1][-1]["content"]  # the first feedback
    assert "请删掉照搬的要求，只写正文" in clients["responder"].calls[2][-1]["content"]  # the one the third draft copied


async def test_feedback_copied_out_again_rounds_after_it_was_sent_is_still_a_leak():
    # From a real 0.5B run: the draft copied round 1's feedback; round 2's feedback said so; round 3's
    # draft copied round 1's feedback again, which no longer matched the feedback just sent.
    copied = "李总，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好。"
    first = "李总，生日快乐！示例只用来学语气，请按这次的对象和场合重新写。"  # round 1's feedback, copied
    good = "李总，生日快乐！这一年跟着您做项目学到了很多，祝您身体健康，事业蒸蒸日上。"
    out, clients = await run_persona([reply(copied), reply(first), reply(first), reply(good)], [scored()],
                                     max_revisions=3)
    history = [(h["codes"], h["by"]) for h in out["sample"].meta["critic_history"]]
    assert "FEWSHOT_COPY" in history[0][0] and history[1][0] == history[2][0] == ["FEEDBACK_LEAK"]
    assert history[3] == ([], "judge") and out["sample"].turns[0].output == good
    assert "照抄了修改意见" in clients["responder"].calls[2][-1]["content"]  # the feedback just sent before round 3
    assert len(clients["critic"].calls) == 1  # the judge never saw a leaked draft


async def test_a_revision_that_keeps_the_draft_a_judge_quoted_is_no_feedback_leak():
    # From a real 0.5B docqa run: the judge copied the draft into its reasons, its low score made that the
    # feedback, and the revision that kept its own sentences had been rejected FEEDBACK_LEAK.
    good = "李总，生日快乐！这一年跟着您做项目学到了很多，祝您身体健康，事业蒸蒸日上。"
    quoting = {**scored(persona=0.4), "reasons": [good]}
    out, clients = await run_persona([reply(good)], [quoting, scored()], max_revisions=2)
    history = [(h["codes"], h["by"]) for h in out["sample"].meta["critic_history"]]
    assert history == [(["HONORIFIC"], "judge"), ([], "judge")] and out["status"] == "accepted"
    assert good in clients["responder"].calls[1][-1]["content"]  # the feedback it was sent holds the draft


async def test_a_feedback_leak_that_never_goes_away_is_rejected_with_its_code():
    stuck = "李总，生日快乐！第 1 轮：回答和问题几乎一样，请给出真正的回答。"
    out, clients = await run_persona([reply(stuck)], [scored()], max_revisions=1)
    assert out["status"] == "rejected" and ReasonCode.FEEDBACK_LEAK in out["reject_codes"]
    assert not clients["critic"].calls


async def test_the_persona_judge_switch_off_accepts_a_clean_greeting_without_a_judge():
    good = "李总，生日快乐！这一年跟着您做项目学到了很多，祝您身体健康，事业蒸蒸日上。"
    out, clients = await run_persona([reply(good)], [], judge="off")
    assert out["status"] == "accepted" and total_judge_calls(clients) == 0


def total_judge_calls(clients) -> int:
    return len(clients["critic"].calls)


async def test_a_qa_answer_citing_the_knowledge_file_is_revised():
    kb = FakeKB([passage("《黑神话：悟空》是一款单机动作角色扮演游戏。", source="wulewule/01_概览.md")])
    clients = fake_clients(asker=[question(QUESTION)],
                           answerer=[answer("《黑神话：悟空》是一款单机动作角色扮演游戏（见 01_概览）。"), answer(GOOD_ANSWER)],
                           critic=[scored()])
    ctx = Context(clients=clients, kb=kb)
    out = await build_qa_graph().compile().ainvoke({"item": ASPECT}, context=ctx)
    assert out["status"] == "accepted"
    first = out["sample"].meta["critic_history"][0]
    assert first == {"decision": "revise", "codes": ["CONTEXT_LEAK"], "by": "rules"}


async def test_a_counsellor_repeating_the_prompt_is_revised():
    item = WorkItem.for_recipe("emollm", "dialogue", key={"n": 2},
                               payload={"area": "学业", "emotion": "焦虑", "turns": [1, 1]})
    leaked = "先共情，再澄清或追问，逐步给出具体可行的建议。你最近还好吗？"
    good = "听起来考试的压力已经影响到你的睡眠了，这种感觉一定很难受。能说说你最担心的是哪一门吗？"
    clients = fake_clients(asker=[message("最近期末考试压力好大，每天晚上都睡不着。")],
                           responder=[reply(leaked), reply(good)], critic=[scored()])
    out = await build_dialogue_graph().compile().ainvoke({"item": item}, context=Context(clients=clients))
    assert out["status"] == "accepted" and out["sample"].turns[0].output == good
    assert out["sample"].meta["critic_history"][0]["codes"] == ["PROMPT_LEAK"]


# ---- the self-judging warning ---------------------------------------------------------------------

def test_self_judging_warning_names_the_roles_and_the_variable():
    settings = load_settings(yaml_data={"preset": "ollama"}, env_file=None)
    line = judge.self_judging_warning(settings)
    assert line is not None and "\n" not in line
    assert "ZAOSHU_CRITIC__MODEL" in line and "asker, answerer, responder" in line and "qwen2.5:7b" in line


def test_no_warning_with_another_critic_model_or_judge_off():
    other = load_settings(yaml_data={"preset": "ollama", "critic": {"model": "qwen2.5:32b"}}, env_file=None)
    assert judge.self_judging_warning(other) is None
    same = load_settings(yaml_data={"preset": "ollama"}, env_file=None)
    assert judge.self_judging_warning(same, judge="off") is None


def test_the_warning_names_only_the_roles_that_share_the_model():
    settings = load_settings(yaml_data={"preset": "ollama", "asker": {"model": "qwen2.5:3b"}}, env_file=None)
    assert "the answerer, responder (" in judge.self_judging_warning(settings)


async def test_a_help_seeker_echoing_the_counsellor_is_rejected_without_useless_revisions():
    """The counsellor can only rewrite its own turn: a defect in the help-seeker's message rejects at once."""
    item = WorkItem.for_recipe("emollm", "dialogue", key={"n": 3},
                               payload={"area": "学业", "emotion": "焦虑", "turns": [2, 2]})
    first = "听起来焦虑已经影响到你的睡眠了。能说说是什么让你这么担心吗？"
    clients = fake_clients(asker=[message("我最近总是焦虑，晚上睡不着。"), message(first)],
                           responder=[reply(first), reply("我能理解，这种感觉一定很难受。我们可以先试着把担心的事写下来，好吗？")],
                           critic=[scored()])
    out = await build_dialogue_graph().compile().ainvoke({"item": item}, context=Context(clients=clients))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.CROSS_ROLE_ECHO]
    assert len(clients["responder"].calls) == 2 and not clients["critic"].calls  # no revision was asked for
    assert out["sample"].meta["rule_hits"][0]["on_input"] is True
