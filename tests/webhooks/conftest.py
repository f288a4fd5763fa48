"""A real HTTP receiver on 127.0.0.1 that records what it is sent and answers from a script, and
settings that name 127.0.0.1 as an allowed internal webhook host so it can be reached (every other
internal address stays refused; tests/webhooks/test_targets.py checks both)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers in order; 200 once they run out
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    on_request: Callable[[], None] | None = None  # runs before each answer


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1"]})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if state.on_request is not None:
                state.on_request()
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            if 300 <= status < 400:
                self.send_header("Location", "/hooks/elsewhere")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"receiver is down")
            state.arrived.set()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/prefloop"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
