"""Local fake HTTP services for tests: HuixiangDou and Serper (the OpenAI-compatible
embeddings endpoint is tests.fake_openai's).

Each binds 127.0.0.1 on an ephemeral port in a daemon thread and stops when its `with` block ends.

    with FakeHuixiangDou([Reply(200, {"step": [...]})]) as hxd:
        HuixiangDouClient(hxd.url).ask("问题")
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A scripted answer: HTTP status, a JSON-able body (or raw str via `raw=True`), an optional delay."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    raw: bool = False


class _Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None

    def handle(self, path: str, headers: dict[str, str], payload: Any) -> Reply:  # overridden
        raise NotImplementedError

    def __enter__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                try:
                    payload = json.loads(raw)
                except json.JSONDecodeError:
                    payload = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "json": payload})
                reply = server.handle(self.path, headers, payload)
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body if reply.raw else json.dumps(reply.body, ensure_ascii=False)
                data = body.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"


class FakeHuixiangDou(_Server):
    """Answers POST /huixiangdou_inference with the scripted replies in order (the last one repeats)."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__()
        self.replies = list(replies)

    def handle(self, path: str, headers: dict[str, str], payload: Any) -> Reply:
        if path != "/huixiangdou_inference":
            return Reply(404, {"detail": "Not Found"})
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FakeSerper(_Server):
    """POST /search: checks X-API-KEY, returns `organic` results (and an optional answer box)."""

    def __init__(self, organic: list[dict[str, Any]], *, key: str = "test-key", answer_box: dict | None = None,
                 status: int = 200) -> None:
        super().__init__()
        self.organic, self.key, self.answer_box, self.status = organic, key, answer_box, status

    def handle(self, path: str, headers: dict[str, str], payload: Any) -> Reply:
        if headers.get("x-api-key") != self.key:
            return Reply(403, {"message": "Unauthorized."})
        if self.status != 200:
            return Reply(self.status, {"message": "quota exceeded"})
        body: dict[str, Any] = {"searchParameters": payload, "organic": self.organic[: payload.get("num", 10)]}
        if self.answer_box:
            body["answerBox"] = self.answer_box
        return Reply(200, body)

