"""The dataset card's PNG plots: matplotlib (Agg, imported lazily) with a CJK font registered explicitly.

The font: Noto Sans CJK SC from the `mplfonts` package (a dependency, so every install has it), else a
CJK font the system has (fonts-noto-cjk, fonts-wqy-microhei, Source Han …). Without one, Chinese labels
would come out as boxes ("tofu"): each plot records matplotlib's missing-glyph warnings, and the card
lists them, so a broken plot is never silent.

>>> cjk_font() is not None
True
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MPLFONTS_FILE = "fonts/NotoSansCJKsc-Regular.otf"
SYSTEM_HINTS = ("notosanscjk", "notoserifcjk", "wqy", "wenquanyi", "sourcehansans", "sourcehanserif",
                "droidsansfallback", "simhei", "msyh", "pingfang")
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


@lru_cache(maxsize=1)
def cjk_font() -> Path | None:
    """The file of a font with Chinese glyphs: mplfonts' Noto Sans CJK SC, else a system CJK font."""
    spec = importlib.util.find_spec("mplfonts")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MPLFONTS_FILE
        if path.is_file():
            return path
    from matplotlib import font_manager

    for name in sorted(font_manager.findSystemFonts()):
        if any(hint in Path(name).name.lower().replace("-", "").replace("_", "") for hint in SYSTEM_HINTS):
            return Path(name)
    return None


@lru_cache(maxsize=1)
def font_family() -> list[str]:
    """Register the CJK font with matplotlib's font manager; the family list to draw with."""
    from matplotlib import font_manager

    path = cjk_font()
    if path is None:
        log.warning("no CJK font found (install mplfonts or fonts-noto-cjk): Chinese labels will be boxes")
        return ["DejaVu Sans"]
    font_manager.fontManager.addfont(str(path))
    return [font_manager.FontProperties(fname=str(path)).get_name(), "DejaVu Sans"]


PLOT_NAMES = ("card_samples_by_field", "card_lengths", "card_rejections", "card_quality", "card_usage")
"""Every plot a card may have; one with nothing to show is not drawn."""


@dataclass
class Plots:
    """The PNGs written (name → path) and any glyph matplotlib could not draw, per plot."""

    files: dict[str, Path] = field(default_factory=dict)
    missing_glyphs: dict[str, list[str]] = field(default_factory=dict)
    font: str = ""


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig


def _save(plots: Plots, out_dir: Path, name: str, draw: Callable[[], Any]) -> None:
    """Draw one figure with the CJK font, save it as `out_dir/name.png`, keep missing-glyph warnings."""
    import matplotlib

    with warnings.catch_warnings(record=True) as caught, matplotlib.rc_context(
            {"font.family": font_family(), "axes.unicode_minus": False}):
        warnings.simplefilter("always")
        fig = draw()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    if missing:
        plots.missing_glyphs[name] = missing
        log.warning("%s: %d glyphs missing from the font, e.g. %s", path, len(missing), missing[0])
    plots.files[name] = path


def _integers(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _bars(ax, counts: Sequence[tuple[str, int]], title: str, color: str, limit: int = 15) -> None:
    _integers(ax.xaxis)
    shown = list(counts)[:limit]
    labels = [label for label, _ in shown][::-1]
    values = [n for _, n in shown][::-1]
    ax.barh(labels, values, color=color)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    rest = len(counts) - len(shown)
    ax.set_title(title + (f"（另有 {rest} 项未列出）" if rest > 0 else ""), fontsize=10)
    ax.margins(x=0.15)
    ax.tick_params(labelsize=8)


def plot_counts(plots: Plots, out_dir: Path, by: dict[str, list[tuple[str, int]]], labels: dict[str, str]) -> None:
    """Samples per value of each meta field (aspect, role, scene, style, emotion, area, tag)."""
    fields = [f for f in by if by[f]]
    if not fields:
        return

    def draw():
        cols = min(2, len(fields))
        rows = (len(fields) + cols - 1) // cols
        fig = _figure(5.2 * cols, max(2.2, 0.28 * max(len(by[f][:15]) for f in fields) + 1.2) * rows)
        axes = fig.subplots(rows, cols, squeeze=False).flatten()
        for i, name in enumerate(fields):
            _bars(axes[i], by[name], f"按{labels.get(name, name)}统计的样本数", COLORS[i % len(COLORS)])
        for ax in axes[len(fields):]:
            ax.set_visible(False)
        return fig

    _save(plots, out_dir, "card_samples_by_field", draw)


def plot_histograms(plots: Plots, out_dir: Path, turns: list[int], inputs: list[int], outputs: list[int]) -> None:
    """Turns per sample; input and output lengths (characters per turn)."""
    if not turns:
        return

    def draw():
        fig = _figure(12, 3.4)
        a, b, c = fig.subplots(1, 3)
        top = max(turns)
        a.hist(turns, bins=[x - 0.5 for x in range(1, top + 2)], color=COLORS[0], rwidth=0.85)
        a.set_title("每个样本的轮数", fontsize=10)
        a.set_xlabel("轮数")
        a.set_ylabel("样本数")
        _integers(a.xaxis)
        for ax, values, title, color in ((b, inputs, "输入长度（字）", COLORS[1]), (c, outputs, "输出长度（字）", COLORS[2])):
            ax.hist(values, bins=min(30, max(5, len(set(values)))), color=color)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("字数")
            ax.set_ylabel("轮次数")
        for ax in (a, b, c):
            _integers(ax.yaxis)
        return fig

    _save(plots, out_dir, "card_lengths", draw)


def plot_rejections(plots: Plots, out_dir: Path, codes: list[tuple[str, int]]) -> None:
    """Rejections (and sent-back drafts) by reason code."""
    if not codes:
        return

    def draw():
        fig = _figure(7, max(2.4, 0.3 * len(codes[:15]) + 1.2))
        _bars(fig.subplots(), codes, "按原因代码统计的拒绝与退回", COLORS[3])
        return fig

    _save(plots, out_dir, "card_rejections", draw)


def plot_quality(plots: Plots, out_dir: Path, rates: list[tuple[str, float | None]]) -> None:
    """Shares in 0–1 (near-duplicate rate, knowledge coverage …); an unknown one is labelled so."""

    def draw():
        fig = _figure(7, 0.55 * len(rates) + 1.0)
        ax = fig.subplots()
        labels = [label for label, _ in rates][::-1]
        values = [v or 0.0 for _, v in rates][::-1]
        ax.barh(labels, [1.0] * len(values), color="#EEEEEE")
        ax.barh(labels, values, color=COLORS[4])
        for y, (_, v) in enumerate(rates[::-1]):
            ax.text(0.01 if v is None else min(v, 0.85) + 0.01, y, "未知" if v is None else f"{v:.1%}", va="center", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_title("近似重复率与知识覆盖率", fontsize=10)
        return fig

    _save(plots, out_dir, "card_quality", draw)


def plot_usage(plots: Plots, out_dir: Path, roles: dict[str, dict[str, float]], currency: str) -> None:
    """Tokens (input and output, stacked) and cost per role."""
    if not roles:
        return
    names = {"asker": "提问 asker", "answerer": "回答 answerer", "responder": "角色 responder", "critic": "质检 critic",
             "judge": "评审 judge"}

    def draw():
        fig = _figure(7, 0.5 * len(roles) + 1.4)
        ax = fig.subplots()
        labels = [names.get(r, r) for r in roles]
        ins = [u.get("input_tokens", 0) for u in roles.values()]
        outs = [u.get("output_tokens", 0) for u in roles.values()]
        ax.barh(labels, ins, color=COLORS[0], label="输入 token")
        ax.barh(labels, outs, left=ins, color=COLORS[1], label="输出 token")
        for y, u in enumerate(roles.values()):
            ax.text(ins[y] + outs[y], y, f" {currency}{u.get('cost', 0):.4f} · {int(u.get('calls', 0))} 次调用",
                    va="center", fontsize=8)
        ax.margins(x=0.35)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title("各角色的 token 与费用", fontsize=10)
        return fig

    _save(plots, out_dir, "card_usage", draw)
