"""Request bodies are refused over their route's limit before they are read (app/core/limits.py), and an
anonymous write to the API is a 401 before its body is parsed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from app.prompts.models import Prompt
from tests.factories import make_user
from tests.helpers import login

MB = 1024 * 1024


def test_a_declared_body_over_the_limit_is_a_413_before_it_is_read(client, annotator_token):
    response = client.post(
        "/api/v1/judgments", content=b"x" * (MB + 1), headers={**annotator_token, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert "1048576 bytes (PREFLOOP_BODY_MAX_BYTES)" in response.json()["detail"][0]["msg"]


def test_a_chunked_body_over_the_limit_is_a_413(client, annotator_token):
    def chunks():
        for _ in range(64):  # 4 MB in all, no Content-Length
            yield b" " * 65536

    response = client.post(
        "/api/v1/judgments", content=chunks(), headers={**annotator_token, "content-type": "application/json"}
    )
    assert response.status_code == 413


def test_the_prompt_import_takes_uploads_up_to_its_own_limit(app, client, db, admin_token):
    line = json.dumps({"prompt": "p" * 1000}) + "\n"
    lines = [line.replace("p" * 8, f"{i:08d}", 1) for i in range(1100)]  # distinct prompts, 1.1 MB
    accepted = client.post(
        "/api/v1/prompts/import",
        headers=admin_token,
        files={"file": ("big.jsonl", "".join(lines).encode(), "application/json")},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["created"] == 1100

    app.state.settings.UPLOAD_MAX_BYTES = 2 * MB
    refused = client.post(
        "/api/v1/prompts/import",
        headers=admin_token,
        files={"file": ("huge.jsonl", ("".join(lines) * 2).encode(), "application/json")},
    )
    assert refused.status_code == 413
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Prompt)) == 1100


def test_a_json_body_over_the_small_limit_is_refused_elsewhere(client, admin_token):
    response = client.post(
        "/api/v1/webhooks",
        headers={**admin_token, "content-type": "application/json"},
        content=json.dumps({"url": "https://example.com/", "description": "d" * (MB + 10)}),
    )
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b'{"comparison_id": "x"}', b""])
def test_an_anonymous_write_is_a_401_whatever_its_body(client, body):
    response = client.post("/api/v1/judgments", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"][0]["type"] == "not_authenticated"


def test_a_cookie_that_names_no_signed_in_session_is_anonymous_before_the_body(client):
    """A made-up cookie, and the one an anonymous browser gets from the sign-in page (a CSRF token, no
    session), are refused before the body; a signed-in browser's JSON is read (and judged on its merits)."""
    client.cookies.set("prefloop_session", "x")
    made_up = client.post("/api/v1/judgments", content=b"{not json", headers={"content-type": "application/json"})
    assert made_up.status_code == 401
    client.cookies.clear()
    client.get("/login")  # the anonymous browser's own, correctly signed cookie
    assert "prefloop_session" in client.cookies
    anonymous = client.post("/api/v1/judgments", content=b"{not json", headers={"content-type": "application/json"})
    assert anonymous.status_code == 401


def test_a_signed_in_browser_gets_past_the_anonymous_check(client, db):
    make_user(db, "alice")
    assert login(client, "alice").status_code == 303
    response = client.post("/api/v1/judgments", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422  # the body was read: the cookie names a session


# --- a real server: what a streamed body costs it -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    port = _free_port()
    env = {
        **os.environ,
        "PREFLOOP_DATA_DIR": str(tmp_path / "data"),
        "PREFLOOP_RUN_BACKGROUND": "false",
        "PREFLOOP_CREATE_FIRST_ADMIN": "false",
        "PREFLOOP_DATABASE_URL": "",
        "PREFLOOP_SECRET_KEY": "k" * 32,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield port, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _stream(port: int, headers: str, total: int, on_chunk) -> bytes:
    """POST a chunked body of `total` bytes as fast as the server takes it; the response's first bytes."""
    chunk = b" " * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"POST /api/v1/judgments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n{headers}\r\n".encode()
        )
        try:
            for index in range(total // len(chunk)):
                s.sendall(framed)
                if index % 256 == 0:
                    on_chunk()
            s.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed, or stopped reading: it refused the rest
            pass
        try:
            return s.recv(200)
        except OSError:
            return b""


@pytest.mark.parametrize(
    "headers, status",
    [("", b" 401 "), ("Authorization: Bearer not-a-token\r\n", b" 413 ")],
    ids=["anonymous", "bearer"],
)
def test_a_streamed_500_mb_body_does_not_grow_the_server(server, headers, status):
    port, process = server
    before = process.memory_info().rss
    peak = [before]
    answer = _stream(port, headers, 500 * MB, lambda: peak.append(process.memory_info().rss))
    peak.append(process.memory_info().rss)
    assert max(peak) - before < 50 * MB, f"the server grew by {(max(peak) - before) // MB} MB"
    assert answer.startswith(b"HTTP/1.1") and status in answer.split(b"\r\n")[0]
