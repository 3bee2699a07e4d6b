"""Server-side SVG charts for the overview: horizontal bars for counts, columns for a histogram.

>>> histogram([1, 2, 3, 250], bins=2)
[(0, 125, 3), (125, 250, 1)]
>>> "<svg" in bar_chart([("TOO_SHORT", 3)], "codes")
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np


def bar_chart(items: list[tuple[str, int]], title: str, limit: int = 8, width: int = 300) -> str:
    """Counts as horizontal bars, most common first; labels and counts as text (readable without colour)."""
    items = items[:limit]
    row, label_w = 16, 120
    height = row * max(len(items), 1) + 24
    top = max((n for _, n in items), default=1) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="12" class="title">{escape(title)}</text>']
    if not items:
        parts.append('<text x="0" y="32" class="empty">(none)</text>')
    for i, (label, n) in enumerate(items):
        y = 20 + i * row
        bar = max(1, round((width - label_w - 50) * n / top))
        short = label if len(label) <= 12 else label[:11] + "…"
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end"><title>{escape(label)}</title>'
                     f'{escape(short)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{bar}" height="{row - 5}"/>'
                     f'<text x="{label_w + bar + 4}" y="{y + 11}" class="n">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[int] | np.ndarray, bins: int = 20) -> list[tuple[int, int, int]]:
    """Equal-width bins over [0, max]: (low, high, count); the last bin includes its upper edge."""
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return []
    top = int(values.max()) or 1
    step = max(1, math.ceil(top / bins))
    counts = np.bincount(np.minimum(values // step, bins - 1), minlength=bins)
    return [(i * step, (i + 1) * step, int(c)) for i, c in enumerate(counts)]


def histogram_chart(values: Sequence[int] | np.ndarray, title: str, bins: int = 20, width: int = 300, height: int = 120) -> str:
    """A length histogram as columns, with the axis range and each bin's count in a tooltip."""
    data = histogram(values, bins)
    top = max((c for _, _, c in data), default=1) or 1
    plot_h = height - 36
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="12" class="title">{escape(title)}</text>']
    if not data:
        parts.append('<text x="0" y="32" class="empty">(none)</text>')
    col = width / max(len(data), 1)
    for i, (low, high, c) in enumerate(data):
        h = round(plot_h * c / top)
        parts.append(f'<rect x="{i * col + 1:.1f}" y="{20 + plot_h - h}" width="{col - 2:.1f}" height="{h}">'
                     f'<title>{low}–{high} chars: {c}</title></rect>')
    if data:
        parts.append(f'<text x="0" y="{height - 2}" class="n">0</text>'
                     f'<text x="{width}" y="{height - 2}" text-anchor="end" class="n">{data[-1][1]} chars</text>'
                     f'<text x="{width / 2}" y="{height - 2}" text-anchor="middle" class="n">'
                     f'{len(values)} samples, max bin {top}</text>')
    parts.append("</svg>")
    return "".join(parts)
