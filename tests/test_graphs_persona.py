"""The persona graph (Tianji greetings) end to end: fakes for every path, then the local server."""

import pytest

from agents.dedup import Deduper
from agents.schemas import ReasonCode, Turn
from agents.context import Context
from graphs.persona import build_persona_graph
from graphs.state import WorkItem
from tests.fakes import fake_clients, local_clients, message, reply, total_calls, verdict

RECIPE = {
    "system_prompt": "你现在是一个送祝福大师，帮我针对不同人和事情、节日送对应的祝福。",
    "input_templates": ["祝{role}{scene}", "帮我写一段给{role}的{scene}祝福"],
    "styles": {
        "正常": {"suffix": "", "min_chars": 10, "max_chars": 120, "emoji": None, "instruction": "礼貌自然。",
                 "few_shot": [{"input": "祝外婆重阳节", "output": "外婆，重阳节快乐！愿您身体硬朗，笑口常开。"}]},
        "小红书": {"suffix": "，小红书风格", "min_chars": 20, "max_chars": 200, "emoji": [1, 2],
                   "instruction": "像大学生发的小红书，活泼，1–2 个 emoji。",
                   "few_shot": [{"input": "祝妹妹生日，小红书风格", "output": "妹妹生日快乐🎂愿你永远闪闪发光，被温柔和好运包围！"}]},
    },
    "roles": [{"name": "爷爷", "relation": "elder"}, {"name": "妹妹", "relation": "peer", "sibling": True},
              {"name": "领导", "relation": "elder"}],
    "random_constraints": ["回答中不用出现“祝你”"],
    "compat_exclusions": [{"role": "爷爷", "scene": "新婚快乐", "reason": "给爷爷送新婚祝福很少见"}],
}
GOOD = "爷爷，生日快乐！愿您身体健康，福寿绵长，天天都有好心情。"


def item(role="爷爷", scene="生日", style="正常", variant=0, **payload):
    return WorkItem.for_recipe("tianji", "persona", key={"role": role, "scene": scene, "style": style, "variant": variant},
                               payload=payload)


async def run(clients, it, **kw):
    ctx = Context(clients=clients, recipe=RECIPE, **kw)
    return await build_persona_graph().compile().ainvoke({"item": it}, context=ctx)


async def test_accept_path_uses_the_template_few_shot_and_constraint():
    clients = fake_clients(responder=[reply(GOOD)], critic=[verdict("accept")])
    out = await run(clients, item(variant=1))
    assert out["status"] == "accepted"
    sample = out["sample"]
    assert sample.turns == [Turn(input="帮我写一段给爷爷的生日祝福", output=GOOD)]
    assert sample.system == RECIPE["system_prompt"] and sample.kind == "qa"
    assert {k: sample.meta[k] for k in ("role", "scene", "style", "variant")} == \
        {"role": "爷爷", "scene": "生日", "style": "正常", "variant": 1}
    assert sample.meta["constraint"] == "回答中不用出现“祝你”" and sample.meta["input_source"] == "template"
    prompt = clients["responder"].prompts()[0]
    assert "外婆，重阳节快乐！" in prompt and "字数不超过 120 字" in prompt and "另外：回答中不用出现“祝你”" in prompt
    assert not clients["asker"].calls  # templated input: no asker call


async def test_role_scene_mismatch_is_rejected_with_zero_model_calls():
    clients = fake_clients()
    out = await run(clients, item(scene="新婚快乐"))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.ROLE_SCENE_MISMATCH]
    assert total_calls(clients) == 0 and out["sample"] is None


async def test_honorific_rule_makes_the_responder_revise_then_the_judge_accepts():
    clients = fake_clients(responder=[reply("爷爷，祝你生日快乐，身体健康，天天开心！"), reply(GOOD)],
                           critic=[verdict("accept")])
    out = await run(clients, item())
    assert out["status"] == "accepted" and out["sample"].turns[0].output == GOOD
    assert len(clients["responder"].calls) == 2 and len(clients["critic"].calls) == 1
    revision = clients["responder"].calls[1]
    assert revision[-2] == {"role": "assistant", "content": "爷爷，祝你生日快乐，身体健康，天天开心！"}
    assert "您" in revision[-1]["content"]  # the rule's message: use 您 for an elder
    assert out["sample"].meta["critic_history"][0]["codes"] == ["HONORIFIC"]


async def test_xiaohongshu_style_needs_emoji_and_judge_can_reject():
    no_emoji = "妹妹生日快乐！新的一岁也要做自己的小太阳，奶茶管够，烦恼清零，每天都开开心心！"  # not the example
    clients = fake_clients(responder=[reply(no_emoji)], critic=[verdict("reject", ("STYLE_MISMATCH",))])
    out = await run(clients, item(role="妹妹", style="小红书"), max_revisions=1)
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.STYLE_MISMATCH]
    assert len(clients["responder"].calls) == 2 and not clients["critic"].calls  # rules caught it both times
    assert out["sample"].turns[0].input == "祝妹妹生日，小红书风格"


async def test_humanized_input_comes_from_the_asker():
    clients = fake_clients(asker=[message("帮我给爷爷写个生日祝福呗，正常点就行")], responder=[reply(GOOD)],
                           critic=[verdict("accept")])
    out = await run(clients, item(humanize=True))
    assert out["sample"].turns[0].input == "帮我给爷爷写个生日祝福呗，正常点就行"
    assert "参考说法（不要照抄）：祝爷爷生日" in clients["asker"].prompts()[0]
    assert out["sample"].meta["input_source"] == "asker"


@pytest.mark.parametrize("role", ["responder", "critic"])
async def test_malformed_output_is_format_with_raw(role):
    replies = {"responder": [reply(GOOD)], "critic": [verdict("accept")]}
    replies[role] = ["<think>嗯</think>写好了"]
    clients = fake_clients(**replies)
    out = await run(clients, item(), structured_attempts=1)
    assert out["reject_codes"] == [ReasonCode.FORMAT] and out["raw"] == "<think>嗯</think>写好了"


async def test_duplicate_greeting_is_rejected():
    dedup = Deduper()
    first = await run(fake_clients(responder=[reply(GOOD)], critic=[verdict("accept")]), item(), deduper_answers=dedup)
    second = await run(fake_clients(responder=[reply(GOOD)], critic=[verdict("accept")]), item(variant=1),
                       deduper_answers=dedup)
    assert first["status"] == "accepted"
    assert second["reject_codes"] == [ReasonCode.DUPLICATE] and second["sample"].meta["duplicate_of"] == item().id


async def test_persona_graph_against_the_local_server(fake_llm):
    fake_llm.add_rule(r"请评估这条祝福语", verdict("accept"))
    fake_llm.add_rule(r"请根据下面的请求写一条祝福语", reply(GOOD))
    async with local_clients() as clients:
        out = await run(clients, item())
    assert out["status"] == "accepted" and out["sample"].turns[0].output == GOOD
    assert [("请根据下面的请求" in r.text, "请评估" in r.text) for r in fake_llm.requests] == [(True, False), (False, True)]


async def test_reject_with_codes_from_the_local_server(fake_llm):
    fake_llm.add_rule(r"请评估这条祝福语", verdict("reject", ("ROLE_SCENE_MISMATCH", "IRRELEVANT")))
    fake_llm.add_rule(r"请根据下面的请求写一条祝福语", reply(GOOD))
    async with local_clients() as clients:
        out = await run(clients, item())  # the reply fits 生日: only the judge rejects it
    assert out["status"] == "rejected"
    assert out["reject_codes"] == [ReasonCode.ROLE_SCENE_MISMATCH, ReasonCode.IRRELEVANT]
    assert out["sample"].meta["verdict"]["decision"] == "reject"
