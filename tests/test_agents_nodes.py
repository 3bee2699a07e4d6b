"""Each agent node on its own, with fake models, a fake KB and a fake runtime."""

import pytest
from langgraph.runtime import Runtime

from agents import answerer, asker, critic, responder
from agents.dedup import Deduper
from agents.schemas import ReasonCode, Turn
from agents.context import Context
from graphs.state import WorkItem
from tests.fakes import (FakeKB, FakeSearch, answer, fake_clients, passage, question, reply, total_calls, verdict,
                         web_result)

ASPECT = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 2},
                             payload={"aspect": "主要角色", "avoid": ["天命人是谁？"]})


def run(ctx, events=None):
    return Runtime(context=ctx, stream_writer=(events.append if events is not None else lambda e: None))


# ---- asker ------------------------------------------------------------------------------------

async def test_ask_by_aspect_shows_topic_context_and_earlier_questions():
    clients = fake_clients(asker=[question(" 黑熊精住在哪座山？ ")])
    kb = FakeKB([passage("黑熊精盘踞在黑风山。")])
    ctx = Context(clients=clients, kb=kb, recipe={"topic": "黑神话：悟空"})
    events = []
    out = await asker.ask_question({"item": ASPECT}, run(ctx, events))
    assert out["question"] == "黑熊精住在哪座山？" and out["outcome"] == "accept"
    prompt = clients["asker"].prompts()[0]
    assert "「黑神话：悟空」的「主要角色」" in prompt
    assert "<q>天命人是谁？</q>" in prompt and "黑熊精盘踞在黑风山。" in prompt
    assert kb.queries == ["黑神话：悟空 主要角色"]
    assert out["meta"]["prompts"]["ask"].startswith("QUESTION_BY_ASPECT_PROMPT#")
    assert events == [{"event": "asked", "item": ASPECT.id, "question": "黑熊精住在哪座山？", "followup": False}]


async def test_ask_by_chunk_uses_the_passage():
    item = WorkItem.for_recipe("xiyouji", "qa", key={"chunk": "001#0"}, payload={"chunk": "石猴在花果山出世。"})
    clients = fake_clients(asker=[question("石猴在哪里出世？")])
    out = await asker.ask_question({"item": item}, run(Context(clients=clients)))
    assert out["question"] == "石猴在哪里出世？"
    assert "<passage>\n石猴在花果山出世。\n</passage>" in clients["asker"].prompts()[0]


async def test_follow_up_sees_the_conversation():
    clients = fake_clients(asker=[question("那他的弱点是什么？")])
    state = {"item": ASPECT, "turns": [Turn(input="黑熊精是谁？", output="黑风山的妖王。")]}
    out = await asker.ask_question(state, run(Context(clients=clients)))
    assert out["question"] == "那他的弱点是什么？"
    assert "用户：黑熊精是谁？\n助手：黑风山的妖王。" in clients["asker"].prompts()[0]


async def test_a_follow_up_in_an_aspect_starts_as_its_first_question_did_and_sees_its_passages():
    # The prefix a server's prompt cache reuses between the two asker calls of one aspect (issue 15).
    clients = fake_clients(asker=[question("黑熊精住在哪座山？"), question("他后来怎么样了？")])
    kb = FakeKB([passage(BLACK_WIND)])
    ctx = Context(clients=clients, kb=kb, recipe={"topic": "黑神话：悟空"})
    first = await asker.ask_question({"item": ASPECT}, run(ctx))
    state = {"item": ASPECT, "context_passages": first["context_passages"],
             "turns": [Turn(input=first["question"], output="黑风山。")]}
    out = await asker.ask_question(state, run(ctx))
    assert out["question"] == "他后来怎么样了？" and out["meta"]["prompts"]["ask"].startswith("FOLLOWUP_BY_ASPECT_PROMPT#")
    first_prompt, followup = clients["asker"].prompts()
    head = first_prompt[:first_prompt.index("已经问过的问题：\n<asked>")]
    assert followup.startswith(head) and BLACK_WIND in head and "「黑神话：悟空」的「主要角色」" in head
    assert "用户：黑熊精住在哪座山？\n助手：黑风山。" in followup[len(head):]
    assert kb.queries == ["黑神话：悟空 主要角色"]  # the follow-up reuses the aspect's passages, no new search


async def test_a_recipes_own_follow_up_prompt_is_still_used_for_an_aspects_follow_up():
    clients = fake_clients(asker=[question("他后来怎么样了？")])
    ctx = Context(clients=clients, recipe={"prompts": {"FOLLOWUP_PROMPT": "接着问：{conversation}"}})
    state = {"item": ASPECT, "turns": [Turn(input="黑熊精住在哪座山？", output="黑风山。")]}
    out = await asker.ask_question(state, run(ctx))
    assert clients["asker"].prompts()[0] == "接着问：用户：黑熊精住在哪座山？\n助手：黑风山。"
    assert out["meta"]["prompts"]["ask"].startswith("FOLLOWUP_PROMPT#")


async def test_a_duplicate_question_is_re_asked_then_rejected_with_the_earlier_id():
    dedup = Deduper()
    dedup.add("earlier-item", "黑熊精住在哪座山？")
    clients = fake_clients(asker=[question("黑熊精住在哪座山")])
    ctx = Context(clients=clients, deduper_questions=dedup, max_revisions=1)
    first = await asker.ask_question({"item": ASPECT}, run(ctx))
    assert first["outcome"] == "revise" and first["revisions"] == 1
    assert first["meta"]["duplicate_questions"] == ["黑熊精住在哪座山"]
    second = await asker.ask_question({"item": ASPECT, "revisions": 1, "meta": first["meta"]}, run(ctx))
    assert "<q>黑熊精住在哪座山</q>" in clients["asker"].prompts()[1]  # shown as already asked
    assert second["status"] == "rejected" and second["reject_codes"] == [ReasonCode.DUPLICATE]
    assert second["meta"]["duplicate_of"] == "earlier-item"
    assert len(dedup) == 1  # a rejected question is not kept


BLACK_WIND = "黑熊精盘踞黑风山黑风洞，自称黑风大王，手下小妖众多，还偷走了观音院的锦襕袈裟。"


async def test_a_passage_copied_out_as_the_question_is_asked_again_then_rejected():
    # A 0.5B asker wrote a sentence of its context as "the question": it never reaches the answerer.
    clients = fake_clients(asker=[question("黑熊精盘踞黑风山黑风洞，自称黑风大王，手下小妖众多。")] * 2)
    ctx = Context(clients=clients, kb=FakeKB([passage(BLACK_WIND)]), max_revisions=1)
    first = await asker.ask_question({"item": ASPECT}, run(ctx))
    assert first["outcome"] == "revise" and first["meta"]["question_problem"].startswith("照抄了资料里的")
    second = await asker.ask_question({"item": ASPECT, "revisions": 1, "meta": first["meta"]}, run(ctx))
    # not shown as already asked: a 0.5B asker shown its broken "question" wrote it out again (real run)
    assert clients["asker"].prompts()[1] == clients["asker"].prompts()[0]
    assert second["status"] == "rejected" and second["reject_codes"] == [ReasonCode.NOT_A_QUESTION]
    assert total_calls(clients) == 2  # neither answered nor judged


async def ask_once(line: str) -> dict:
    clients = fake_clients(asker=[question(line)])
    return await asker.ask_question({"item": ASPECT}, run(Context(clients=clients, kb=FakeKB([passage(BLACK_WIND)]))))


@pytest.mark.parametrize("line", ["黑熊精住在哪座山？", "介绍一下黑熊精", "黑熊精有几个手下", "请问黑风洞在哪", "黑熊精为何偷袈裟"])
async def test_questions_and_requests_pass_the_question_check(line):
    out = await ask_once(line)
    assert out["outcome"] == "accept" and out["question"] == line


async def test_a_bare_topic_is_no_question():
    out = await ask_once("黑熊精的弱点")  # neither asked nor requested
    assert out["outcome"] == "revise" and out["meta"]["question_problem"].startswith("不是一个问题")


async def test_a_follow_up_statement_is_asked_again():
    clients = fake_clients(asker=[question("黑熊精住在黑风山。"), question("那他最后被谁收服了？")])
    state = {"item": ASPECT, "turns": [Turn(input="黑熊精是谁？", output="黑风山的妖王。")]}
    ctx = Context(clients=clients)
    first = await asker.ask_question(state, run(ctx))
    assert first["outcome"] == "revise"
    second = await asker.ask_question({**state, "revisions": 1, "meta": first["meta"]}, run(ctx))
    assert second["outcome"] == "accept" and second["question"] == "那他最后被谁收服了？"


@pytest.mark.parametrize("bad", ["我想问：黑熊精是谁", '{"q": "字段不对"}', ""])
async def test_unparsable_asker_output_is_rejected_with_format_and_raw(bad):
    clients = fake_clients(asker=[bad])
    out = await asker.ask_question({"item": ASPECT}, run(Context(clients=clients, structured_attempts=2)))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.FORMAT]
    assert out["raw"] == bad and len(clients["asker"].calls) == 2


def test_scene_example_uses_the_variant_template_and_style_suffix():
    ctx = Context(clients={}, recipe={"input_templates": ["祝{role}{scene}", "我想送{role}{scene}祝福"],
                                      "styles": {"严肃": {"suffix": "，严肃风格"}}})
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "领导", "scene": "春节", "style": "严肃", "variant": 3})
    assert asker.scene_example(ctx, item) == "我想送领导春节祝福，严肃风格"


# ---- answerer ---------------------------------------------------------------------------------

async def test_retrieve_records_sources_and_scores():
    kb = FakeKB([passage("黑熊精盘踞在黑风山。", index=3, score=0.031, dense=0.71, bm25=7.2)])
    events = []
    out = await answerer.retrieve({"item": ASPECT, "question": "黑熊精在哪？"}, run(Context(clients={}, kb=kb), events))
    assert out["retrieval"] == "kb"
    assert out["meta"]["sources"] == [{"turn": 0, "source": "wulewule/01_概览.md", "chunk_id": "wulewule/01_概览.md#3",
                                       "score": 0.031, "scores": {"dense": 0.71, "bm25": 7.2, "fused": 0.031},
                                       "origin": "kb"}]
    assert events[-1] == {"event": "retrieved", "item": ASPECT.id, "mode": "kb",
                          "sources": [["wulewule/01_概览.md", 0.031]]}


async def test_an_aspect_question_is_answered_from_the_passages_it_was_written_from_first():
    context = [passage(f"语境{i}。", index=i) for i in range(3)]
    found = [passage("检索甲。", index=10), context[1], passage("检索乙。", index=11), passage("检索丙。", index=12)]
    ctx = Context(clients={}, kb=FakeKB(found), top_k=4)
    first = await answerer.retrieve({"item": ASPECT, "question": "黑熊精在哪？", "context_passages": context}, run(ctx))
    assert [p.text for p in first["passages"]] == ["语境0。", "语境1。", "语境2。", "检索甲。"]  # k = 4 in all
    follow = await answerer.retrieve({"item": ASPECT, "question": "后来呢？", "context_passages": context,
                                      "turns": [Turn(input="黑熊精在哪？", output="黑风山。")]}, run(ctx))
    # a follow-up asks for what the first answer did not say: the context, then two passages of its own
    assert [p.text for p in follow["passages"]] == ["语境0。", "语境1。", "语境2。", "检索甲。", "检索乙。"]
    assert [s["turn"] for s in follow["meta"]["sources"]] == [1] * 5
    alone = await answerer.retrieve({"item": ASPECT, "question": "黑熊精在哪？"}, run(ctx))
    assert [p.text for p in alone["passages"]] == ["检索甲。", "语境1。", "检索乙。", "检索丙。"]


async def test_unanswerable_falls_back_to_the_web_with_urls():
    kb = FakeKB([passage("无关内容。")], answerable=False)
    search = FakeSearch([web_result("https://example.com/wukong", "《黑神话：悟空》于 2024 年 8 月 20 日发售。")])
    ctx = Context(clients={}, kb=kb, search=search)
    out = await answerer.retrieve({"item": ASPECT, "question": "什么时候发售？"}, run(ctx))
    assert out["retrieval"] == "web" and out["meta"]["urls"] == ["https://example.com/wukong"]
    assert search.queries == ["什么时候发售？"]


async def test_unanswerable_without_web_is_rejected():
    ctx = Context(clients={}, kb=FakeKB([passage("无关内容。")], answerable=False))
    out = await answerer.retrieve({"item": ASPECT, "question": "什么时候发售？"}, run(ctx))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.UNANSWERABLE]


async def test_answer_revision_shows_the_draft_and_the_feedback():
    clients = fake_clients(answerer=[answer("黑风山。")])
    state = {"item": ASPECT, "question": "黑熊精在哪？", "passages": [passage("黑熊精盘踞在黑风山。")],
             "draft": "黑风山，他很强。", "feedback": "删掉资料里没有的“他很强”。", "attempts": 1}
    out = await answerer.answer(state, run(Context(clients=clients, recipe={"system_prompt": "你是悟了悟了。"})))
    assert out["draft"] == "黑风山。" and out["attempts"] == 2
    call = clients["answerer"].calls[0]
    assert call[0]["content"].startswith("你是悟了悟了。")
    assert call[-2] == {"role": "assistant", "content": "黑风山，他很强。"}
    assert "删掉资料里没有的“他很强”。" in call[-1]["content"]


# ---- responder --------------------------------------------------------------------------------

RECIPE = {"system_prompt": "你是天机。", "random_constraints": ["", "不要出现“祝你”", "提到一件一起经历的小事"],
          "styles": {"正常": {"instruction": "礼貌自然。", "max_chars": 80,
                             "few_shot": [{"input": f"例{i}", "output": f"示例祝福{i}"} for i in range(5)]}}}


def test_styled_values_are_seeded_per_item():
    ctx = Context(clients={}, recipe=RECIPE)
    items = [WorkItem.for_recipe("tianji", "persona", key={"role": "爷爷", "scene": "生日", "style": "正常", "variant": v})
             for v in range(12)]
    first = [responder.styled_values(ctx, i, "祝爷爷生日") for i in items]
    assert first == [responder.styled_values(ctx, i, "祝爷爷生日") for i in items]  # a rerun makes the same choices
    assert {v["constraint"] for v in first} == {"", "另外：不要出现“祝你”", "另外：提到一件一起经历的小事"}
    assert all(v["examples"].count("<example>") == 3 and v["max_chars"] == 80 for v in first)


async def test_respond_styled_returns_the_text():
    clients = fake_clients(responder=[reply("爷爷，生日快乐！愿您福如东海。")])
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "爷爷", "scene": "生日", "style": "正常"})
    out = await responder.respond_styled({"item": item, "question": "祝爷爷生日"},
                                         run(Context(clients=clients, recipe=RECIPE)))
    assert out["draft"] == "爷爷，生日快乐！愿您福如东海。" and out["attempts"] == 1
    assert clients["responder"].calls[0][0]["content"].startswith("你是天机。")


# ---- critic -----------------------------------------------------------------------------------

async def test_rule_hits_revise_without_calling_the_judge():
    clients = fake_clients()
    state = {"item": ASPECT, "question": "黑熊精在哪？", "draft": "好的，以下是答案：黑熊精在黑风山。"}
    out = await critic.critique_answer(state, run(Context(clients=clients)))
    assert out["outcome"] == "revise" and out["revisions"] == 1
    assert ReasonCode.PREAMBLE in out["verdict"].reason_codes
    assert out["feedback"] and out["meta"]["rule_hits"][0]["rule"] == "preamble"
    assert total_calls(clients) == 0


async def test_rule_hits_after_the_last_revision_reject_with_their_codes():
    state = {"item": ASPECT, "question": "黑熊精在哪？", "draft": "作为一个AI语言模型，我无法回答。", "revisions": 2}
    out = await critic.critique_answer(state, run(Context(clients=fake_clients(), max_revisions=2)))
    assert out["status"] == "rejected"
    assert set(out["reject_codes"]) >= {ReasonCode.AI_SELF_REFERENCE}


async def test_judge_accept_commits_the_turn_and_sees_the_passages():
    clients = fake_clients(critic=[verdict("accept")])
    state = {"item": ASPECT, "question": "黑熊精在哪？", "draft": "黑熊精盘踞在黑风山。",
             "passages": [passage("黑熊精盘踞在黑风山。")]}
    out = await critic.critique_answer(state, run(Context(clients=clients)))
    assert out["outcome"] == "accept" and out["turns"] == [Turn(input="黑熊精在哪？", output="黑熊精盘踞在黑风山。")]
    assert out["question"] is None and out["revisions"] == 0
    assert '<passage id="1" source="wulewule/01_概览.md">黑熊精盘踞在黑风山。</passage>' in clients["critic"].prompts()[0]


async def test_judge_reject_without_codes_gets_the_graph_default():
    clients = fake_clients(critic=[verdict("reject")])
    state = {"item": ASPECT, "question": "黑熊精在哪？", "draft": "黑熊精盘踞在黑风山。"}
    out = await critic.critique_answer(state, run(Context(clients=clients)))
    assert out["reject_codes"] == [ReasonCode.UNGROUNDED]


async def test_unparsable_verdict_is_format_with_raw():
    clients = fake_clients(critic=['{"decision": "maybe"}'])
    state = {"item": ASPECT, "question": "黑熊精在哪？", "draft": "黑熊精盘踞在黑风山。"}
    out = await critic.critique_answer(state, run(Context(clients=clients)))
    assert out["reject_codes"] == [ReasonCode.FORMAT] and out["raw"] == '{"decision": "maybe"}'
    assert len(clients["critic"].calls) == 3


def test_rule_context_reads_the_recipe():
    recipe = {"styles": {"小红书": {"min_chars": 20, "max_chars": 200, "emoji": [1, 2]},
                         "正常": {"min_chars": 8, "max_chars": 120, "emoji": None}},
              "roles": [{"name": "表妹", "relation": "peer", "sibling": True}],
              "compat_exclusions": [{"role": "领导", "scene": "七夕节", "reason": "上下级不送七夕祝福"}],
              "rules": {"disabled": ["english_leak"]}}
    ctx = Context(clients={}, recipe=recipe)
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "表妹", "scene": "生日", "style": "正常"})
    rc = critic.rule_context(ctx, item, "greeting")
    assert rc.limits() == (8, 120) and rc.emoji_limits() is None
    assert (rc.relation, rc.sibling, rc.disabled) == ("peer", True, frozenset({"english_leak"}))
    excluded = WorkItem.for_recipe("tianji", "persona", key={"role": "领导", "scene": "七夕节", "style": "正常"})
    assert critic.compat_reason(ctx, excluded) == "上下级不送七夕祝福"
    assert critic.compat_reason(ctx, item) is None


async def test_dedup_rejects_a_near_copy_with_the_earlier_id_and_keeps_new_ones():
    questions, answers = Deduper(), Deduper()
    ctx = Context(clients={}, deduper_questions=questions, deduper_answers=answers)
    first = WorkItem.for_recipe("w", "qa", key={"n": 1})
    second = WorkItem.for_recipe("w", "qa", key={"n": 2})
    turns = [Turn(input="黑熊精在哪座山？", output="黑熊精盘踞在黑风山的黑风洞里，是第一回的头目。")]
    assert (await critic.dedup({"item": first, "turns": turns}, run(ctx)))["status"] == "accepted"
    again = [Turn(input="黑熊精住在什么山？", output="黑熊精盘踞在黑风山的黑风洞里，是第一回的头目！")]
    out = await critic.dedup({"item": second, "turns": again}, run(ctx))
    assert out["reject_codes"] == [ReasonCode.DUPLICATE] and out["meta"]["duplicate_of"] == first.id
    assert out["meta"]["duplicate_field"] == "answer"
    assert len(questions) == 1 and len(answers) == 1  # the duplicate's texts are not kept


async def test_questions_asked_earlier_in_the_run_for_the_aspect_are_shown():
    clients = fake_clients(asker=[question("黑熊精住在哪座山？"), question("黄风大圣是谁？")])
    ctx = Context(clients=clients)
    second = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 3}, payload={"aspect": "主要角色"})
    other = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "战斗系统", "n": 0}, payload={"aspect": "战斗系统"})
    await asker.ask_question({"item": ASPECT}, run(ctx))
    await asker.ask_question({"item": second}, run(ctx))
    assert "<q>黑熊精住在哪座山？</q>" in clients["asker"].prompts()[1]
    assert ctx.asked == {"主要角色": ["黑熊精住在哪座山？", "黄风大圣是谁？"]}
    _, prompt = asker.question_prompt(ctx, other, [], [], [])
    assert "黑熊精" not in prompt  # another aspect's questions are not shown


async def test_a_slow_retrieval_does_not_stall_the_event_loop():
    import asyncio
    import time as clock

    class SlowKB(FakeKB):
        def retrieve(self, query, k):
            clock.sleep(0.5)  # a large index, a cold cache
            return super().retrieve(query, k)

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    kb = SlowKB([passage("黑熊精盘踞在黑风山。", index=3, score=0.031, dense=0.71, bm25=7.2)])
    task = asyncio.create_task(ticker())
    out = await answerer.retrieve({"item": ASPECT, "question": "黑熊精在哪？"}, run(Context(clients={}, kb=kb), []))
    task.cancel()
    assert out["retrieval"] == "kb"
    assert ticks >= 20  # other items kept running while the query took 0.5 s
