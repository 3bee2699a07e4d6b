"""HuixiangDou client and web search providers against local fake servers (no real network)."""

from __future__ import annotations

import pytest

from agents.errors import ConfigError
from knowledge.huixiangdou import HuixiangDouClient, HuixiangDouError, HuixiangDouReply
from knowledge.websearch import NoSearch, SerperSearch, WebSearchError, make_search
from tests.fake_services import FakeHuixiangDou, FakeSerper, Reply

GROUP_REPLY = {
    "step": [
        {"state": "Init state", "response": "", "refs": []},
        {"state": "success", "response": "天命人是玩家操控的角色。", "refs": ["角色.md", "背景.md"]},
        {"state": "Reply has a high relevance to prohibited topics.", "response": "", "refs": []},
    ],
    "debug": {"Text2vecNode_topic": "天命人"},
}
REPO_REPLY = "**References:**\r\n* 角色.md\r\n* https://example.com/a\r\n\r\n天命人是玩家操控的角色。"


def test_chat_in_group_reply_takes_the_last_success_step() -> None:
    with FakeHuixiangDou([Reply(200, GROUP_REPLY)]) as server:
        reply = HuixiangDouClient(server.url, timeout=5).ask("天命人是谁？")
        assert server.requests[0]["json"] == {"text": "天命人是谁？", "image": ""}
    assert reply == HuixiangDouReply("天命人是玩家操控的角色。", ["角色.md", "背景.md"], "success")
    assert reply.ok


async def test_bare_string_reply_with_references_async() -> None:
    with FakeHuixiangDou([Reply(200, REPO_REPLY), Reply(200, "没有引用的回答。")]) as server:
        client = HuixiangDouClient(server.url, timeout=5)
        first, second = await client.aask("天命人是谁？"), await client.aask("再问一次")
    assert first == HuixiangDouReply("天命人是玩家操控的角色。", ["角色.md", "https://example.com/a"], "success")
    assert second == HuixiangDouReply("没有引用的回答。", [], "success")


def test_a_rejection_state_is_not_an_answer() -> None:
    body = {"step": [{"state": "Topics unrelated to the knowledge base. Updating good_questions and bad_questions "
                               "can improve accuracy.", "response": "", "refs": []}]}
    with FakeHuixiangDou([Reply(200, body)]) as server:
        reply = HuixiangDouClient(server.url).ask("今天天气如何")
    assert reply.answer == "" and not reply.ok and reply.state.startswith("Topics unrelated")


@pytest.mark.parametrize("reply, message", [
    (Reply(500, {"detail": "Internal Server Error"}), r"answered HTTP 500"),
    (Reply(200, "<html>oops", raw=True), r"invalid JSON"),
    (Reply(200, {"answer": "x"}), r"unknown shape"),
    (Reply(200, {"step": []}), r"empty step list"),
    (Reply(200, GROUP_REPLY, delay=1.0), r"did not answer within 0.2 s"),
])
def test_errors_are_clear(reply: Reply, message: str) -> None:
    with FakeHuixiangDou([reply]) as server:
        with pytest.raises(HuixiangDouError, match=message):
            HuixiangDouClient(server.url, timeout=0.2).ask("问题")


def test_an_unreachable_server_is_a_clear_error() -> None:
    with FakeHuixiangDou([Reply()]) as server:
        url = server.url
    with pytest.raises(HuixiangDouError, match="Cannot reach HuixiangDou"):
        HuixiangDouClient(url, timeout=1).ask("问题")


ORGANIC = [
    {"title": "西游记 - 维基百科", "link": "https://zh.wikipedia.org/wiki/西游记", "snippet": "《西游记》是明代吴承恩的小说。",
     "position": 1},
    {"title": "孙悟空", "link": "https://baike.example/sunwukong", "snippet": "孙悟空是美猴王。", "position": 2},
    {"title": "无链接", "snippet": "没有 link 的结果被丢弃。"},
    {"title": "第三条", "link": "https://example.com/3", "snippet": "第三条结果。"},
]


async def test_serper_results_become_passages_with_url_sources(monkeypatch) -> None:
    with FakeSerper(ORGANIC, answer_box={"title": "作者", "link": "https://example.com/box", "answer": "吴承恩"}) as server:
        monkeypatch.setenv("SERPER_API_KEY", "test-key")
        search = make_search("serper", base_url=server.url)
        passages = await search.search("西游记的作者是谁", k=3)
        sent = server.requests[0]
    assert sent["json"]["q"] == "西游记的作者是谁" and sent["headers"]["x-api-key"] == "test-key"
    assert [p.source for p in passages] == ["https://example.com/box", "https://zh.wikipedia.org/wiki/西游记",
                                            "https://baike.example/sunwukong"]
    assert passages[0].text == "作者\n吴承恩"
    assert passages[1].title == "西游记 - 维基百科" and passages[1].chunk_id == passages[1].source
    assert [p.score for p in passages] == [1.0, 0.5, 0.333333]


async def test_serper_errors_and_missing_key(monkeypatch) -> None:
    with FakeSerper(ORGANIC, key="right") as server:
        with pytest.raises(WebSearchError, match="refused the key .*SERPER_API_KEY"):
            await SerperSearch("wrong", base_url=server.url).search("问题")
    with FakeSerper(ORGANIC, status=429) as server:
        with pytest.raises(WebSearchError, match="HTTP 429"):
            await SerperSearch("test-key", base_url=server.url).search("问题")
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SERPER_API_KEY"):
        make_search("serper")


async def test_search_off_by_default_and_unknown_provider() -> None:
    assert isinstance(make_search(None), NoSearch)
    assert await make_search(None).search("问题") == []
    with pytest.raises(ConfigError, match="Unknown web search provider 'bing'"):
        make_search("bing")


def test_ddgs_without_the_optional_package_says_how_to_install(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ddgs(name, *args, **kwargs):
        if name == "ddgs":
            raise ImportError("No module named 'ddgs'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ddgs)
    with pytest.raises(ConfigError, match=r"pip install 'zaoshu\[web\]'"):
        make_search("ddgs")


async def test_ddgs_results_are_normalised(monkeypatch) -> None:
    import sys
    import types

    class FakeDDGS:
        def __init__(self, timeout: int = 15) -> None:
            pass

        def text(self, query: str, region: str, max_results: int):
            return [{"title": "标题", "href": "https://duck.example/1", "body": "正文。"}][:max_results]

    monkeypatch.setitem(sys.modules, "ddgs", types.SimpleNamespace(DDGS=FakeDDGS))
    passages = await make_search("ddgs").search("问题", k=2)
    assert [(p.source, p.text, p.scores) for p in passages] == [("https://duck.example/1", "标题\n正文。", {"web": 1.0})]
