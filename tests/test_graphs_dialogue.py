"""The dialogue graph (EmoLLM): seeker and counsellor alternate for T turns; the critic checks each
turn and the whole dialogue."""

import pytest

from agents.schemas import ReasonCode
from agents.context import Context
from graphs.dialogue import build_dialogue_graph, plan_turns
from graphs.state import WorkItem
from tests.fakes import fake_clients, local_clients, message, reply, total_calls, verdict

RECIPE = {"counsellor_system_prompt": "你是心理健康助手，用专业又温暖的方式陪伴来访者。",
          "seeker_instruction": "像普通学生那样说话。", "turns": [3, 6],
          "counsellor_few_shot": [{"seeker": "我最近总失眠。", "counsellor": "听起来你这段时间很辛苦，能说说失眠前都在想什么吗？"}]}


def item(n=0, **payload):
    return WorkItem.for_recipe("emollm", "dialogue", key={"area": "学业", "emotion": "焦虑", "n": n},
                               payload={"area": "学业", "emotion": "焦虑", **payload})


SEEKER = ["我一想到考试就心跳加快，担心成绩会让家人失望。", "晚上躺在床上脑子停不下来，总在回放白天做错的题。",
          "室友都在刷题，我一休息就觉得自己在浪费时间。", "上周模拟考只考了六十分，我连饭都吃不下。",
          "我不敢跟爸妈说，怕他们觉得我不够努力。", "有时候我会突然想哭，可又说不清到底为什么。"]
COUNSELLOR = ["我听到了你的担心，这种压力很真实。能说说是哪一门让你最紧张吗？",
              "反复回想错题说明你很在意结果。睡前试着把担心写在纸上，告诉自己明天再处理。",
              "休息并不是浪费，大脑需要恢复才能记住东西。我们可以一起排一个有休息的学习计划。",
              "一次模拟考只反映一部分情况。先照顾好吃饭和睡眠，再看看丢分主要在哪些题型。",
              "担心让父母失望，说明你很重视他们。也许可以先挑一个你觉得最安全的时刻，说一点点你的感受。",
              "想哭是压力在找出口，这很正常。你今天愿意说出来，已经是在照顾自己了，我们慢慢来。"]


def seeker_lines():
    lines = iter(SEEKER * 3)
    return lambda messages: message(next(lines))


def counsellor_lines():
    lines = iter(COUNSELLOR * 3)
    return lambda messages: reply(next(lines))


async def run(clients, it, **kw):
    ctx = Context(clients=clients, recipe=RECIPE, **kw)
    return await build_dialogue_graph().compile().ainvoke({"item": it}, context=ctx)


@pytest.mark.parametrize("n", range(4))
async def test_dialogue_has_t_turns_within_range_and_ends_with_the_counsellor(n):
    clients = fake_clients(asker=seeker_lines(), responder=counsellor_lines(), critic=[verdict("accept")])
    it = item(n)
    out = await run(clients, it)
    planned = plan_turns(it, Context(clients={}, recipe=RECIPE))
    assert 3 <= planned <= 6
    sample = out["sample"]
    assert out["status"] == "accepted" and sample.kind == "dialogue"
    assert len(sample.turns) == planned == sample.meta["turns_planned"]
    assert all(t.input and t.output for t in sample.turns)  # every seeker message gets a counsellor reply
    assert sample.turns[-1].output == COUNSELLOR[planned - 1]
    assert sample.system == RECIPE["counsellor_system_prompt"]
    assert (len(clients["asker"].calls), len(clients["responder"].calls), len(clients["critic"].calls)) == \
        (planned, planned, 1)
    assert "这是最后一轮" in clients["responder"].calls[-1][-1]["content"]  # the progress note comes last
    assert "这是最后一轮" not in clients["responder"].calls[0][-1]["content"]
    assert len({c[0]["content"] for c in clients["responder"].calls}) == 1  # one system message: cacheable


async def test_seeker_sees_the_conversation_and_counsellor_the_history():
    clients = fake_clients(asker=seeker_lines(), responder=counsellor_lines(), critic=[verdict("accept")])
    out = await run(clients, item(turns=[2, 2]))
    assert len(out["sample"].turns) == 2
    assert "「学业」方面，主要情绪是「焦虑」" in clients["asker"].prompts()[0]
    assert f"来访者：{SEEKER[0]}\n咨询师：{COUNSELLOR[0]}" in clients["asker"].prompts()[1]
    second = clients["responder"].calls[1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert "听起来你这段时间很辛苦" in second[0]["content"]  # few-shot in the system message


async def test_a_turn_repeating_an_earlier_one_is_revised_by_the_rules():
    same = reply("我听到了你的担心，这种压力很真实。我们先试着把让你紧张的念头写下来，看看它是事实还是想象。")
    fresh = reply("你已经迈出了很重要的一步。今晚睡前花五分钟做腹式呼吸，明天我们再聊聊效果，好吗？")
    clients = fake_clients(asker=seeker_lines(), responder=[same, same, fresh], critic=[verdict("accept")])
    out = await run(clients, item(turns=[2, 2]))
    assert out["status"] == "accepted"
    assert len(clients["responder"].calls) == 3
    assert "重复了第 1 轮" in clients["responder"].calls[2][-1]["content"]
    assert out["sample"].turns[1].output == fresh["text"]


async def test_judge_revise_rewrites_from_the_named_turn():
    clients = fake_clients(asker=seeker_lines(), responder=counsellor_lines(),
                           critic=[verdict("revise", ("PERSONA_DRIFT",), "第 2 轮不要说教。", turn=2), verdict("accept")])
    out = await run(clients, item(turns=[3, 3]))
    assert out["status"] == "accepted" and len(out["sample"].turns) == 3
    # 3 replies, then turn 2 rewritten (with the feedback) and turn 3 again
    assert len(clients["responder"].calls) == 5 and len(clients["asker"].calls) == 4
    assert "第 2 轮不要说教。" in clients["responder"].calls[3][-1]["content"]
    assert out["sample"].meta["critic_history"][-2]["codes"] == ["PERSONA_DRIFT"]


async def test_judge_revise_exhausted_rejects_with_its_codes():
    clients = fake_clients(asker=seeker_lines(), responder=counsellor_lines(),
                           critic=[verdict("revise", ("CONTRADICTION",), "前后矛盾。", turn=1)])
    out = await run(clients, item(turns=[2, 2]), max_revisions=1)
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.CONTRADICTION]
    assert len(clients["critic"].calls) == 2


async def test_malformed_seeker_output_is_format_with_raw():
    clients = fake_clients(asker=["我不想按格式说话"])
    out = await run(clients, item(), structured_attempts=1)
    assert out["reject_codes"] == [ReasonCode.FORMAT] and out["raw"] == "我不想按格式说话"
    assert total_calls(clients) == 1


async def test_dialogue_graph_against_the_local_server(fake_llm):
    fake_llm.add_rule(r"请评估这段心理咨询对话", verdict("accept"))
    fake_llm.add_rule(r"请继续扮演这位来访者", message("我试过深呼吸，但一到考场还是脑子一片空白，真的很害怕。"))
    fake_llm.add_rule(r"请扮演一位正在寻求心理帮助的来访者", message("我下个月要考研，最近每天都很焦虑，晚上也睡不好。"))
    answers = iter(["你能说出来已经很勇敢了。焦虑常常来自对结果的担心，我们先看看最让你害怕的是哪一部分？",
                    "考场上脑子空白是很多人都会有的反应。下次可以先做三次慢呼吸，再从最有把握的题开始。你已经做得很好了。"])
    fake_llm.add_rule(r"心理咨询对话。像下面的例子", lambda req: reply(next(answers)))
    async with local_clients() as clients:
        out = await run(clients, item(turns=[2, 2]))
    assert out["status"] == "accepted"
    assert [t.input[:4] for t in out["sample"].turns] == ["我下个月", "我试过深"]
    assert len(fake_llm.requests) == 5
