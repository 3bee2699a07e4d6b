"""A retrieved passage: what the answerer grounds on, from the knowledge base or the web.

>>> Passage(text="石猴出世。", source="xiyouji/001.txt", chunk_id="xiyouji/001.txt#0", score=0.03,
...         scores={"dense": 0.8, "bm25": 5.1, "fused": 0.03}).scores["bm25"]
5.1
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Passage(BaseModel):
    text: str
    source: str = Field(description="Where it came from: '<folder>/<relative path>' or a URL.")
    chunk_id: str = Field(description="Stable id: '<source>#<chunk index>' (or the URL for web results).")
    title: str | None = Field(default=None, description="Chapter or heading in force, or the web page title.")
    score: float = Field(default=0.0, description="The ranking score (fused for the knowledge base).")
    scores: dict[str, float] = Field(default_factory=dict, description="Each retriever's score: dense, bm25, fused…")
    start: int | None = Field(default=None, description="Character offset in the source text.")
    end: int | None = None
