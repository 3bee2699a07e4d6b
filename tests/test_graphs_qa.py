"""The QA graph end to end: fakes for every path, then the real client against the local server."""

import json

import pytest

from agents.dedup import Deduper
from agents.schemas import ReasonCode, Turn
from agents.context import Context
from graphs.qa import build_qa_graph
from graphs.state import WorkItem
from knowledge.huixiangdou import HuixiangDouClient
from tests.fake_services import FakeHuixiangDou, Reply
from tests.fakes import FakeKB, local_clients, FakeSearch, answer, fake_clients, passage, question, verdict, web_result

SYSTEM = "你是悟了悟了，专注回答《黑神话：悟空》的问题。"
KB_TEXT = "黑熊精是黑风山的妖王，盘踞在黑风洞。"
ITEM = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 1}, payload={"aspect": "主要角色"})


async def run(ctx, item=ITEM):
    return await build_qa_graph().compile().ainvoke({"item": item}, context=ctx)


def context(clients, **kw):
    kw.setdefault("kb", FakeKB([passage(KB_TEXT, index=2, score=0.032)]))
    return Context(clients=clients, recipe={"system_prompt": SYSTEM}, **kw)


async def test_accept_path_produces_a_grounded_sample_with_meta():
    clients = fake_clients(asker=[question("黑熊精住在哪里？")], answerer=[answer("黑熊精盘踞在黑风山的黑风洞。")],
                           critic=[verdict("accept")])
    out = await run(context(clients))
    assert out["status"] == "accepted" and not out.get("reject_codes")
    sample = out["sample"]
    assert sample.id == ITEM.id and sample.kind == "qa" and sample.system == SYSTEM
    assert sample.turns == [Turn(input="黑熊精住在哪里？", output="黑熊精盘踞在黑风山的黑风洞。")]
    meta = sample.meta
    assert meta["aspect"] == "主要角色" and meta["retrieval"] == "kb" and meta["attempts"] == 1
    assert meta["judge"] == "on"  # how it was judged (was recorded only for judge: off)
    assert [s["chunk_id"] for s in meta["sources"]] == ["wulewule/01_概览.md#2"]
    assert meta["sources"][0]["scores"]["fused"] == 0.032
    assert meta["models"] == {"asker": "fake-asker", "answerer": "fake-answerer", "critic": "fake-critic"}
    assert set(meta["prompts"]) == {"ask", "answer", "judge"}
    assert meta["verdict"]["decision"] == "accept" and meta["verdict"]["scores"]["grounding"] == 0.9
    assert out["verdict"].decision == "accept" and out["attempts"] == 1


async def test_passage_numbers_a_small_model_writes_as_names_do_not_reject_its_answer():
    """`used_passages` is bookkeeping: a 0.5B model wrote file names there (["docs/a.md", "2"]) and the
    whole answer was rejected FORMAT. The numbers it gave are kept, the rest dropped."""
    clients = fake_clients(asker=[question("黑熊精住在哪里？")],
                           answerer=[{"answer": "黑熊精盘踞在黑风山的黑风洞。", "used_passages": ["01_概览.md", "2", "[3]"]}],
                           critic=[verdict("accept")])
    out = await run(context(clients))
    assert out["status"] == "accepted", out.get("reject_codes")
    assert out["sample"].meta["used_passages"] == [2, 3]


async def test_revise_then_accept_answers_twice_with_the_feedback():
    clients = fake_clients(asker=[question("黑熊精住在哪里？")],
                           answerer=[answer("黑熊精住在黑风山，他有三头六臂。"), answer("黑熊精盘踞在黑风山的黑风洞。")],
                           critic=[verdict("revise", ("UNGROUNDED",), "资料没有提到三头六臂，请删掉。"), verdict("accept")])
    out = await run(context(clients))
    assert out["status"] == "accepted"
    assert len(clients["answerer"].calls) == 2 and len(clients["critic"].calls) == 2
    assert "资料没有提到三头六臂，请删掉。" in clients["answerer"].prompts()[1]
    assert "资料没有提到三头六臂" not in clients["answerer"].texts()[0]
    assert out["sample"].turns[0].output == "黑熊精盘踞在黑风山的黑风洞。"
    assert out["sample"].meta["attempts"] == 2
    assert [h["decision"] for h in out["sample"].meta["critic_history"]] == ["revise", "accept"]


async def test_revisions_exhausted_reject_with_the_last_codes():
    clients = fake_clients(asker=[question("黑熊精住在哪里？")], answerer=[answer("黑熊精住在黑风山，他会飞。")],
                           critic=[verdict("revise", ("UNGROUNDED",), "删掉会飞。"),
                                   verdict("revise", ("IRRELEVANT",), "切题一点。")])
    out = await run(context(clients, max_revisions=2))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.IRRELEVANT]
    assert len(clients["answerer"].calls) == 3  # first answer + 2 revisions
    assert out["sample"].meta["reject_codes"] == ["IRRELEVANT"] and out["sample"].meta["revisions_exhausted"] == 2
    assert out["sample"].turns[0].output == "黑熊精住在黑风山，他会飞。"  # the rejected draft is kept for the ledger


async def test_rule_layer_catches_a_preamble_before_the_judge():
    clients = fake_clients(asker=[question("黑熊精住在哪里？")],
                           answerer=[answer("好的，以下是回答：黑熊精在黑风山。"), answer("黑熊精盘踞在黑风山的黑风洞。")],
                           critic=[verdict("accept")])
    out = await run(context(clients))
    assert out["status"] == "accepted" and len(clients["critic"].calls) == 1
    assert out["sample"].meta["critic_history"][0] == {"decision": "revise", "codes": ["PREAMBLE"], "by": "rules"}


async def test_unanswerable_falls_back_to_web_and_records_the_url():
    clients = fake_clients(asker=[question("游戏什么时候发售？")], answerer=[answer("2024 年 8 月 20 日发售。")],
                           critic=[verdict("accept")])
    search = FakeSearch([web_result("https://example.com/release", "《黑神话：悟空》2024 年 8 月 20 日发售。")])
    out = await run(context(clients, kb=FakeKB([passage("无关。", score=0.001)], answerable=False), search=search))
    assert out["status"] == "accepted"
    assert out["sample"].meta["retrieval"] == "web"
    assert out["sample"].meta["urls"] == ["https://example.com/release"]
    assert 'source="https://example.com/release"' in clients["answerer"].prompts()[0]


async def test_unanswerable_without_web_is_rejected_before_answering():
    clients = fake_clients(asker=[question("游戏什么时候发售？")])
    out = await run(context(clients, kb=FakeKB([passage("无关。")], answerable=False)))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.UNANSWERABLE]
    assert out["sample"].turns == [Turn(input="游戏什么时候发售？", output="")]
    assert not clients["answerer"].calls and not clients["critic"].calls


async def test_huixiangdou_backend_answers_and_refs_are_recorded():
    body = {"step": [{"state": "success", "response": "黑熊精盘踞在黑风山。", "refs": ["02_章节与地图.md"]}]}
    clients = fake_clients(asker=[question("黑熊精住在哪里？")], critic=[verdict("accept")])
    with FakeHuixiangDou([Reply(200, body)]) as server:
        out = await run(context(clients, kb=None, huixiangdou=HuixiangDouClient(server.url, timeout=5)))
        assert server.requests[0]["json"] == {"text": "黑熊精住在哪里？", "image": ""}
    assert out["status"] == "accepted" and not clients["answerer"].calls
    assert out["sample"].turns[0].output == "黑熊精盘踞在黑风山。"
    assert out["sample"].meta["retrieval"] == "huixiangdou"
    assert out["sample"].meta["huixiangdou_refs"] == ["02_章节与地图.md"]
    assert out["sample"].meta["models"]["answerer"] == "huixiangdou"


async def test_huixiangdou_declines_then_web_fallback():
    body = {"step": [{"state": "Topics unrelated to the knowledge base.", "response": "", "refs": []}]}
    clients = fake_clients(asker=[question("今天天气如何？")], answerer=[answer("今天是晴天，适合出门。")], critic=[verdict("accept")])
    search = FakeSearch([web_result("https://example.com/weather", "今天晴。")])
    with FakeHuixiangDou([Reply(200, body)]) as server:
        out = await run(context(clients, kb=None, huixiangdou=HuixiangDouClient(server.url, timeout=5), search=search))
    assert out["status"] == "accepted" and out["sample"].meta["urls"] == ["https://example.com/weather"]


@pytest.mark.parametrize("role", ["asker", "answerer", "critic"])
async def test_malformed_model_output_is_rejected_with_format_and_raw_text(role):
    replies = {"asker": [question("黑熊精住在哪里？")], "answerer": [answer("黑熊精在黑风山。")],
               "critic": [verdict("accept")]}
    replies[role] = ["这不是 JSON，只是一句话。"]
    clients = fake_clients(**replies)
    out = await run(context(clients, structured_attempts=2))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.FORMAT]
    assert out["raw"] == "这不是 JSON，只是一句话。"
    assert len(clients[role].calls) == 2
    assert out["sample"] is None if role == "asker" else out["sample"].meta["failed_step"] in ("answer", "critique")


async def test_follow_ups_make_a_multi_turn_sample_with_the_system_prompt_once():
    clients = fake_clients(asker=[question("黑熊精住在哪里？"), question("他守护的宝物是什么？")],
                           answerer=[answer("黑熊精盘踞在黑风山的黑风洞。"), answer("他觊觎唐僧的锦斓袈裟。")],
                           critic=[verdict("accept")])
    item = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 2},
                               payload={"aspect": "主要角色", "followups": 1})
    kb = FakeKB([passage(KB_TEXT, index=2, score=0.032)])
    out = await run(context(clients, kb=kb), item)
    assert out["status"] == "accepted"
    assert [t.input for t in out["sample"].turns] == ["黑熊精住在哪里？", "他守护的宝物是什么？"]
    # a follow-up is searched with the question before it: 「他」 alone names no one
    assert kb.queries[-2:] == ["黑熊精住在哪里？", "黑熊精住在哪里？ 他守护的宝物是什么？"]
    assert "用户：黑熊精住在哪里？\n助手：黑熊精盘踞在黑风山的黑风洞。" in clients["asker"].prompts()[1]
    first, second = clients["answerer"].calls[0], clients["answerer"].calls[1]
    # the history sits in the prompt after the passages: both calls start alike (a cacheable prefix)
    assert [m["role"] for m in second] == ["system", "user"] and second[0] == first[0]
    prompt = second[1]["content"]
    assert prompt.index("</passages>") < prompt.index("<conversation>\n用户：黑熊精住在哪里？\n助手：黑熊精盘踞在黑风山的黑风洞。")
    assert prompt.endswith("<question>他守护的宝物是什么？</question>")
    assert "<conversation>\n（无）\n</conversation>" in first[1]["content"]
    assert sorted({s["turn"] for s in out["sample"].meta["sources"]}) == [0, 1]


class TopicKB(FakeKB):
    """Answers only what its one passage is about: a query without 黑熊精's 黑风 finds nothing."""

    def retrieve(self, query, k=5):
        self.queries.append(query)
        return self.passages[:k] if "黑风" in query.split()[-1] or "宝物" in query else []


FOLLOWUP_ITEM = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 3},
                                    payload={"aspect": "主要角色", "followups": 1})


async def test_an_unanswerable_follow_up_is_asked_again_and_the_first_turn_is_kept():
    """A follow-up the knowledge base could not answer rejected the whole item as UNANSWERABLE, its
    accepted first turn with it."""
    clients = fake_clients(asker=[question("黑风洞在哪里？"), question("他最喜欢吃什么？"), question("他守护的宝物是什么？")],
                           answerer=[answer("黑风洞在黑风山上。"), answer("他守护着锦斓袈裟这件宝物。")],
                           critic=[verdict("accept")])
    out = await run(context(clients, kb=TopicKB([passage(KB_TEXT, index=2, score=0.032)])), FOLLOWUP_ITEM)
    assert out["status"] == "accepted"
    assert [t.input for t in out["sample"].turns] == ["黑风洞在哪里？", "他守护的宝物是什么？"]
    assert out["sample"].meta["unanswerable_followups"] == ["他最喜欢吃什么？"]
    again = clients["asker"].prompts()[2]  # the asker is told which follow-up found nothing
    assert "找不到答案" in again and "<q>他最喜欢吃什么？</q>" in again
    assert "找不到答案" not in clients["asker"].prompts()[1]
    assert len(clients["answerer"].calls) == 2  # nothing was answered without passages


async def test_retrieval_names_every_turns_source_not_the_last_ones():
    """A first turn from the knowledge base and a follow-up from the web said retrieval: web, so `runs show`
    counted the sample as a web answer."""
    clients = fake_clients(asker=[question("黑风洞在哪里？"), question("他最喜欢吃什么？")],
                           answerer=[answer("黑风洞在黑风山上。"), answer("网上说他爱吃素斋。")],
                           critic=[verdict("accept")])
    search = FakeSearch([web_result("https://example.com/heixiong", "黑熊精爱吃素斋。")])
    out = await run(context(clients, kb=TopicKB([passage(KB_TEXT, index=2, score=0.032)]), search=search),
                    FOLLOWUP_ITEM)
    assert out["status"] == "accepted"
    assert out["sample"].meta["retrieval"] == "kb+web"
    assert [(s["turn"], s["origin"]) for s in out["sample"].meta["sources"]] == [(0, "kb"), (1, "web")]


async def test_a_follow_up_left_unanswerable_after_the_re_asks_rejects_the_item():
    clients = fake_clients(asker=[question("黑风洞在哪里？"), question("他最喜欢吃什么？"), question("他几岁了？"),
                                  question("他的师父是谁？")],
                           answerer=[answer("黑风洞在黑风山上。")], critic=[verdict("accept")])
    out = await run(context(clients, kb=TopicKB([passage(KB_TEXT, index=2, score=0.032)]), max_revisions=2),
                    FOLLOWUP_ITEM)
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.UNANSWERABLE]
    assert out["sample"].meta["unanswerable_followups"] == ["他最喜欢吃什么？", "他几岁了？", "他的师父是谁？"]
    assert len(clients["asker"].calls) == 4 and len(clients["answerer"].calls) == 1


async def test_a_duplicate_answer_is_rejected_with_the_earlier_id():
    questions, answers = Deduper(), Deduper()
    first = fake_clients(asker=[question("黑熊精住在哪里？")], answerer=[answer("黑熊精盘踞在黑风山的黑风洞。")],
                         critic=[verdict("accept")])
    assert (await run(context(first, deduper_questions=questions, deduper_answers=answers)))["status"] == "accepted"
    other = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 9}, payload={"aspect": "主要角色"})
    second = fake_clients(asker=[question("黑熊精的老巢在哪？")], answerer=[answer("黑熊精盘踞在黑风山的黑风洞！")],
                          critic=[verdict("accept")])
    out = await run(context(second, deduper_questions=questions, deduper_answers=answers), other)
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.DUPLICATE]
    assert out["sample"].meta["duplicate_of"] == ITEM.id


async def test_stream_emits_custom_events_for_the_tracer():
    clients = fake_clients(asker=[question("黑熊精住在哪里？")], answerer=[answer("黑熊精盘踞在黑风山的黑风洞。")],
                           critic=[verdict("accept")])
    events = []
    graph = build_qa_graph().compile()
    async for mode, chunk in graph.astream({"item": ITEM}, context=context(clients), stream_mode=["updates", "custom"]):
        if mode == "custom":
            events.append(chunk["event"])
    assert events == ["asked", "retrieved", "answered", "verdict"]


# ---- against the local OpenAI-compatible server ---------------------------------------------

async def test_qa_graph_against_the_local_server(fake_llm):
    judged = iter([verdict("revise", ("UNGROUNDED",), "不要提到三头六臂。"), verdict("accept")])
    fake_llm.add_rule(r"请围绕", question("黑熊精住在哪里？"))
    fake_llm.add_rule(r"请评估助手的回答", lambda req: next(judged))
    fake_llm.add_rule(r"不要提到三头六臂", answer("黑熊精盘踞在黑风山的黑风洞。"))
    fake_llm.add_rule(r"请只根据下面的资料", answer("黑熊精住在黑风山，有三头六臂。"))
    async with local_clients() as clients:
        out = await run(context(clients))
    assert out["status"] == "accepted"
    assert out["sample"].turns[0].output == "黑熊精盘踞在黑风山的黑风洞。"
    assert out["sample"].meta["models"]["critic"] == "fake-model"
    assert len(fake_llm.requests) == 5 and all(r.json_mode for r in fake_llm.requests)
    assert KB_TEXT in fake_llm.requests[1].last_user


async def test_malformed_json_from_the_local_server_is_recorded(fake_llm):
    fake_llm.add_rule(r"请围绕", question("黑熊精住在哪里？"))
    fake_llm.add_rule(r"请只根据下面的资料", "黑熊精住在黑风山。")  # plain text, never JSON
    async with local_clients() as clients:
        out = await run(context(clients))
    assert out["status"] == "rejected" and out["reject_codes"] == [ReasonCode.FORMAT]
    assert out["raw"] == "黑熊精住在黑风山。"
    assert json.dumps(out["sample"].meta, ensure_ascii=False)  # meta stays JSON-serializable


async def test_web_fallback_through_serper_and_the_local_server(fake_llm):
    from knowledge.websearch import make_search
    from tests.fake_services import FakeSerper

    fake_llm.add_rule(r"请围绕", question("游戏什么时候发售？"))
    fake_llm.add_rule(r"请评估助手的回答", verdict("accept"))
    fake_llm.add_rule(r"请只根据下面的资料", answer("《黑神话：悟空》于 2024 年 8 月 20 日发售。"))
    organic = [{"title": "发售日期", "link": "https://example.com/release", "snippet": "2024 年 8 月 20 日发售。"}]
    with FakeSerper(organic) as serper:
        search = make_search("serper", base_url=serper.url, api_key="test-key")
        async with local_clients() as clients:
            out = await run(context(clients, kb=FakeKB([passage("无关。")], answerable=False), search=search))
        assert serper.requests[0]["json"]["q"] == "游戏什么时候发售？"
    assert out["status"] == "accepted" and out["sample"].meta["urls"] == ["https://example.com/release"]
    assert "https://example.com/release" in fake_llm.requests[1].last_user


async def test_search_switched_off_counts_as_no_web_fallback():
    from knowledge.websearch import make_search

    clients = fake_clients(asker=[question("游戏什么时候发售？")])
    out = await run(context(clients, kb=FakeKB([passage("无关。")], answerable=False), search=make_search(None)))
    assert out["reject_codes"] == [ReasonCode.UNANSWERABLE]


async def test_with_a_real_knowledge_base(tmp_path):
    from knowledge.index import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bosses.md").write_text("# 头目\n\n黑熊精是黑风山的妖王，盘踞在黑风洞。\n\n黄风大圣镇守黄风岭。\n", encoding="utf-8")
    (docs / "release.md").write_text("# 发售\n\n游戏于 2024 年 8 月 20 日发售，登陆 PC 与 PS5。\n", encoding="utf-8")
    kb = KnowledgeBase.build(docs, tmp_path / "index", "hash")
    clients = fake_clients(asker=[question("黑熊精盘踞在哪里？")], answerer=[answer("黑熊精盘踞在黑风山的黑风洞。")],
                           critic=[verdict("accept")])
    out = await run(context(clients, kb=kb))
    assert out["status"] == "accepted"
    sources = out["sample"].meta["sources"]
    assert sources[0]["source"].endswith("bosses.md") and set(sources[0]["scores"]) >= {"dense", "bm25", "fused"}
    assert "黑熊精是黑风山的妖王" in clients["answerer"].prompts()[0]
