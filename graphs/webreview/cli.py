"""`zaoshu review RUN_DIR [--port P] [--no-browser]`: serve the review page on 127.0.0.1.

    zaoshu review runs/wulewule/r1            # prints http://127.0.0.1:8765/ and opens the browser
    zaoshu review runs/wulewule/r1 --port 0 --no-browser   # any free port; the URL is printed
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import typer

from agents.errors import InputError

HOST = "127.0.0.1"  # never another interface: the page can edit the run folder


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections: no 40 ms Nagle stalls
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass --port 0 for any free port") from None
    sock.listen(128)
    return sock


def review(
    run_dir: Path = typer.Argument(..., help="A run folder (runs/<recipe>/<run-name>/) with accepted/rejected/failed.jsonl."),
    port: int = typer.Option(8765, "--port", "-p", help="Port on 127.0.0.1; 0 picks a free one."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL only; do not open a browser."),
) -> None:
    """Open a local web page to read, filter, accept, reject and edit a run's samples (decisions go to review.jsonl)."""
    import uvicorn

    from graphs.webreview.app import create_app
    from graphs.webreview.index import FILES

    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    if not any((run_dir / f"{name}.jsonl").exists() for name in FILES):
        from graphs.shards import shard_dirs

        if shard_dirs(run_dir):
            raise InputError(f"{run_dir} is sharded: review one shard at a time, e.g. zaoshu review "
                             f"{shard_dirs(run_dir)[0]} (export reads every shard's decisions)")
        raise InputError(f"{run_dir} has no accepted.jsonl, rejected.jsonl or failed.jsonl; is it a run folder?")
    sock = _listen(port)
    started = time.perf_counter()
    app = create_app(run_dir)
    counts = app.state.review.index.counts()
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    typer.echo(f"indexed {sum(counts[f] for f in FILES):,} lines ({', '.join(f'{counts[f]:,} {f}' for f in FILES)}) "
               f"in {time.perf_counter() - started:.1f} s; decisions go to {run_dir / 'review.jsonl'}")
    typer.echo(f"review page: {url}  (Ctrl-C to stop)")
    sys.stdout.flush()
    if not no_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    server.run(sockets=[sock])


def register(app: typer.Typer) -> None:
    """Add `review` as a top-level command of the root CLI."""
    app.command("review")(review)
