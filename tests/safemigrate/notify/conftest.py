"""A real HTTP receiver on 127.0.0.1 (a thread) that records what webhooks POST to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Receiver:
    """``url(path)`` to POST to; ``statuses`` answers in turn (then 200); ``posts`` what arrived."""

    port: int
    statuses: list[int] = field(default_factory=list)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in self.posts if where == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.posts.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hooks(settings, receiver: Receiver) -> Receiver:
    """Slack, Discord and plain-JSON webhooks all pointing at the receiver; no delay between tries."""
    settings.SAFEMIGRATE_NOTIFY_SLACK = receiver.url("/slack")
    settings.SAFEMIGRATE_NOTIFY_DISCORD = [receiver.url("/discord")]
    settings.SAFEMIGRATE_NOTIFY_WEBHOOKS = receiver.url("/json")
    settings.SAFEMIGRATE_NOTIFY_RETRY_DELAY = 0
    return receiver
