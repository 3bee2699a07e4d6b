"""The one way a zaoshu command makes its rich Console.

    console = make_console()               # stdout
    err = make_console(stderr=True)

On a terminal it is rich's own Console (the terminal's width, or COLUMNS). Piped, redirected or in a
CI log, rich would fall back to 80 columns and fold or cut every long line and table cell; there the
console is as wide as COLUMNS (if set) or WIDE, and printed text is never wrapped, so a command,
path, URL or error message stays whole on one line. Tables take only the width their cells need.
"""

from __future__ import annotations

import os

from rich.console import Console

#: the width off a terminal when COLUMNS is unset: a cap no table row or line should reach
WIDE = 10_000


def make_console(*, stderr: bool = False, **kwargs) -> Console:
    """A Console on stdout (or stderr); `kwargs` go to rich's Console (highlight=False, soft_wrap=True…)."""
    console = Console(stderr=stderr, **kwargs)
    if console.is_terminal:
        return console
    width = None if os.environ.get("COLUMNS", "").isdigit() else WIDE  # rich reads COLUMNS itself
    return Console(stderr=stderr, width=width, **{"soft_wrap": True, **kwargs})
