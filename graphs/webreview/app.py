"""The review page: a FastAPI app over one run folder (Jinja templates, htmx for the actions).

    app = create_app(Path("runs/wulewule/r1"))   # served by `zaoshu review RUN_DIR`

GET /            samples with filters and server-side pagination, and the overview charts
POST /sample/{sid}/{action}   accept | reject | edit | note | undo → the sample's card, re-rendered

Every action goes through `ReviewLedger.append` with the revision the page showed; a stale one is
answered with a visible conflict message and the reviewer's unsaved text, never applied silently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agents.schemas import ReasonCode
from graphs.review_ledger import ReviewLedger, StaleRevision, blank_answer
from graphs.webreview.charts import bar_chart, histogram_chart
from graphs.webreview.index import FACETS, FILES, LABELS, Query, RunIndex
from graphs.webreview.view import card

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
ACTIONS = ("accept", "reject", "edit", "note", "undo")
REASONS = [ReasonCode.HUMAN_REJECTED.value] + [c.value for c in ReasonCode if c is not ReasonCode.HUMAN_REJECTED]
PER_PAGE = 20


class Review:
    """The run folder's index and review ledger, kept in step with each other and with the files."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.index = RunIndex(self.run_dir)
        self.ledger = ReviewLedger(self.run_dir)
        for sample_id in list(self.ledger.states):
            self._mirror(sample_id)
        self._overview: tuple[int, dict[str, Any]] | None = None

    def _mirror(self, sample_id: str) -> None:
        state = self.ledger.get(sample_id)
        text = "\n".join(v for change in state.edits.values() for v in change.values())
        self.index.set_review(sample_id, state.status, state.reason, bool(state.edits), bool(state.notes), text)

    def refresh(self) -> None:
        """Pick up lines appended to any ledger since the last request (by a run, or another process)."""
        self.index.refresh()
        for sample_id in set(self.ledger.refresh()):
            self._mirror(sample_id)

    def act(self, sample_id: str, action: str, base_rev: int, **fields: Any):
        state = self.ledger.append(sample_id, action, base_rev, **fields)
        self._mirror(sample_id)
        return state

    def overview(self) -> dict[str, Any]:
        """Counts and charts of the whole run folder, recomputed only when something changed."""
        if self._overview and self._overview[0] == self.index.generation:
            return self._overview[1]
        facets = self.index.facets()
        data = {"facets": facets, "counts": self.index.counts(), "charts": charts(facets, self.index.lengths())}
        self._overview = (self.index.generation, data)
        return data


def charts(facets: dict[str, list[tuple[str, int]]], lengths: Sequence[int]) -> list[str]:
    """The overview's SVG charts: reason codes, reviewer rejections, answer lengths, then each label."""
    out = [bar_chart(facets["code"], "reason codes (critic)"), bar_chart(facets["reviewer"], "reviewer rejections"),
           histogram_chart(lengths, "answer length (characters)")]
    return out + [bar_chart(facets[name], f"by {name}") for name in (*LABELS, "tag", "source") if facets[name]]


async def form_fields(request: Request) -> frozenset[str]:
    """The names of the form fields sent (FastAPI gives an empty field as None, like one not sent at all)."""
    return frozenset((await request.form()).keys())


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = lambda n: f"{n:,}"
    return env


def create_app(run_dir: Path) -> FastAPI:
    """The app for one run folder; the index is built here, once (the folder must exist)."""
    review = Review(run_dir)
    env = _environment()
    app = FastAPI(title=f"zaoshu review {run_dir}", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])  # no DNS rebinding
    app.state.review = review

    @app.middleware("http")
    async def same_page_only(request: Request, call_next):
        """Actions come from this page's htmx (a header no cross-site form can send), so another web page
        open in the same browser cannot write to the ledger."""
        if request.method == "POST" and request.headers.get("hx-request") != "true":
            return PlainTextResponse("actions are accepted from the review page only", status_code=403)
        return await call_next(request)

    def render_card(sid: int, flash: str = "", conflict: dict[str, Any] | None = None) -> str:
        found = review.index.record(sid)
        if found is None:
            raise HTTPException(404, f"no sample #{sid}")
        file, record = found
        view = card(sid, file, record, review.ledger.get(str(record.get("id", ""))))
        return env.get_template("card.html").render(c=view, reasons=REASONS, flash=flash, conflict=conflict)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> str:
        review.refresh()
        params = request.query_params
        try:
            page_no = max(1, int(params.get("page", "1")))
        except ValueError:
            page_no = 1
        query = Query(file=params.get("file", ""), code=params.get("code", ""), review=params.get("review", ""),
                      q=params.get("q", "").strip(), labels={f: params.get(f, "") for f in FACETS},
                      page=page_no, per_page=PER_PAGE)
        total, rows, summary = review.index.search(query, summarize=True)
        overview = review.overview()
        shown = charts(summary["facets"], summary["lengths"]) if summary else overview["charts"]
        pages = max(1, -(-total // PER_PAGE))
        kept = {k: v for k, v in params.items() if v and k != "page"}
        cards = [render_card(sid) for sid, _, _ in rows]
        return env.get_template("page.html").render(
            run_dir=str(review.run_dir), query=query, kept=kept, total=total, pages=pages, cards=cards,
            overview=overview, charts=shown, filtered=summary is not None, files=FILES, facets=FACETS, reasons=REASONS,
            first=(page_no - 1) * PER_PAGE + 1 if total else 0, last=min(total, page_no * PER_PAGE),
            url=lambda **change: "?" + urlencode({**kept, **{k: v for k, v in change.items() if v}}))

    @app.get("/sample/{sid}", response_class=HTMLResponse)
    def one(sid: int) -> str:
        review.refresh()
        return render_card(sid)

    @app.post("/sample/{sid}/{action}", response_class=HTMLResponse)
    def act(sid: int, action: str, base_rev: int = Form(...), reason: str = Form(""), turn: int | None = Form(None),
            input: str | None = Form(None), output: str | None = Form(None), note: str = Form(""),
            sample_id: str | None = Form(None), sent: frozenset[str] = Depends(form_fields)) -> str:
        review.refresh()
        found = review.index.record(sid)
        if found is None or action not in ACTIONS:
            raise HTTPException(404, f"no action {action} on sample #{sid}")
        file, record = found
        if sample_id is not None and sample_id != str(record.get("id", "")):
            raise HTTPException(409, "the run folder was indexed again since this page was loaded; reload the page")
        sample_id = str(record.get("id", ""))
        view = card(sid, file, record, review.ledger.get(sample_id))
        fields: dict[str, Any] = {}
        if action == "reject":
            if reason not in REASONS:
                return render_card(sid, flash=f"unknown reason code {reason!r}")
            fields["reason"] = reason
        elif action == "edit":
            if not view["has_sample"] or turn is None or not 0 <= turn < len(view["turns"]):
                return render_card(sid, flash="this sample has no such turn to edit")
            if output is None and "output" in sent:  # the page's answer box, emptied
                output = ""
            fields.update(turn=turn, input=input, output=output)
            if problem := blank_answer(action, fields):
                return render_card(sid, flash=problem)
        elif action == "note":
            if not note.strip():
                return render_card(sid, flash="an empty note was not saved")
            fields["note"] = note.strip()
        elif action == "undo" and not review.ledger.get(sample_id).effective:
            return render_card(sid, flash="nothing to undo")
        elif action == "accept" and not view["has_sample"]:
            return render_card(sid, flash="a failed item has no sample to accept")
        try:
            state = review.act(sample_id, action, base_rev, **fields)
        except StaleRevision as exc:
            unsaved = output if action == "edit" else note if action == "note" else None
            return render_card(sid, conflict={"rev": exc.current.rev, "base_rev": base_rev, "action": action,
                                              "unsaved": unsaved, "turn": turn})
        log.info("review %s %s → revision %d", sample_id, action, state.rev)
        return render_card(sid, flash=f"{action} saved (revision {state.rev})")

    return app
