"""Web search fallbacks (off by default): Serper (Google results over HTTP, as HuixiangDou uses) and
DuckDuckGo via the optional `ddgs` package. Results become Passages whose source is the URL.

>>> import asyncio
>>> asyncio.run(make_search(None).search("孙悟空", 3))
[]
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Protocol

import httpx

from agents.errors import ConfigError, ServiceAuthError, ServiceError
from knowledge.passage import Passage

log = logging.getLogger(__name__)

SERPER_URL = "https://google.serper.dev"


class WebSearchError(ServiceError):
    """The search provider failed for one query (network, quota): the item fails, the run goes on."""


class WebSearchAuthError(WebSearchError, ServiceAuthError):
    """The provider refused the key: the run stops."""


class WebSearch(Protocol):
    name: str

    async def search(self, query: str, k: int = 5) -> list[Passage]: ...


class NoSearch:
    """Web search switched off: always no results."""

    name = "none"

    async def search(self, query: str, k: int = 5) -> list[Passage]:
        return []


def _passage(rank: int, title: str, url: str, text: str, provider: str) -> Passage:
    score = round(1.0 / rank, 6)
    return Passage(text=f"{title}\n{text}".strip(), source=url, chunk_id=url, title=title or None,
                   score=score, scores={provider: score})


class SerperSearch:
    """POST {base_url}/search with the X-API-KEY header; `organic` results (and an answer box) become passages."""

    name = "serper"

    def __init__(self, api_key: str, base_url: str = SERPER_URL, timeout: float = 15.0, lang: str = "zh-cn") -> None:
        self.api_key, self.base_url, self.timeout, self.lang = api_key, base_url.rstrip("/"), timeout, lang

    async def search(self, query: str, k: int = 5) -> list[Passage]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.base_url}/search", headers={"X-API-KEY": self.api_key},
                                             json={"q": query, "num": k, "hl": self.lang})
        except httpx.HTTPError as exc:
            raise WebSearchError(f"Serper search failed ({type(exc).__name__}): {exc}") from exc
        if response.status_code in (401, 403):
            raise WebSearchAuthError(f"Serper refused the key (HTTP {response.status_code}): check SERPER_API_KEY")
        if response.status_code != 200:
            raise WebSearchError(f"Serper answered HTTP {response.status_code}: {response.text[:120]!r}")
        try:
            data: dict[str, Any] = response.json()
        except ValueError as exc:
            raise WebSearchError(f"Serper replied with invalid JSON: {response.text[:80]!r}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("organic") or [], list):  # not Serper's answer
            raise WebSearchError(f"Serper reply has an unknown shape (check ZAOSHU_SERPER_BASE_URL): "
                                 f"{response.text[:80]!r}")
        items = []
        box = data.get("answerBox") if isinstance(data.get("answerBox"), dict) else {}
        if box.get("link") and (box.get("answer") or box.get("snippet")):
            items.append((box.get("title", ""), box["link"], box.get("answer") or box.get("snippet")))
        for hit in data.get("organic") or []:
            if isinstance(hit, dict) and hit.get("link"):
                items.append((hit.get("title", ""), hit["link"], hit.get("snippet", "")))
        return [_passage(rank, *item, provider="web") for rank, item in enumerate(items[:k], 1)]


class DdgsSearch:
    """DuckDuckGo through the `ddgs` package (pip install 'zaoshu[web]'), run in a worker thread."""

    name = "ddgs"

    def __init__(self, region: str = "cn-zh", timeout: int = 15) -> None:
        try:
            from ddgs import DDGS
        except ImportError as exc:
            raise ConfigError("Web search 'ddgs' needs the optional package: pip install 'zaoshu[web]'") from exc
        self._ddgs = DDGS(timeout=timeout)
        self.region = region

    async def search(self, query: str, k: int = 5) -> list[Passage]:
        try:
            hits = await asyncio.to_thread(self._ddgs.text, query, region=self.region, max_results=k)
        except Exception as exc:  # ddgs raises its own DDGSException family and network errors
            raise WebSearchError(f"DuckDuckGo search failed: {exc}") from exc
        return [_passage(rank, h.get("title", ""), h["href"], h.get("body", ""), provider="web")
                for rank, h in enumerate(hits or [], 1) if h.get("href")][:k]


def make_search(provider: str | None, base_url: str | None = None, api_key: str | None = None) -> WebSearch:
    """`None`/"none" → NoSearch; "serper" → key from `api_key` or SERPER_API_KEY, base URL from
    `base_url` or ZAOSHU_SERPER_BASE_URL; "ddgs" → DuckDuckGo (optional extra)."""
    if provider in (None, "", "none", "off"):
        return NoSearch()
    if provider == "serper":
        key = api_key or os.environ.get("SERPER_API_KEY")
        if not key:
            raise ConfigError("Web search 'serper' needs SERPER_API_KEY (https://serper.dev/api-key)")
        return SerperSearch(key, base_url or os.environ.get("ZAOSHU_SERPER_BASE_URL") or SERPER_URL)
    if provider == "ddgs":
        return DdgsSearch()
    raise ConfigError(f"Unknown web search provider {provider!r}: use serper, ddgs or none")
