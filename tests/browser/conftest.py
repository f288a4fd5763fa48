"""A real server (uvicorn, in a background thread, on a free loopback port) and a real Chromium.

Fixtures: `live_server` (.url, .db, .settings), `browser` (one Chromium per test module) and `browser_page`
(a fresh context per test). Helpers: `sign_in(page, live_server, username)` and `screenshot(page, name)`
(saved as test-artifacts/<name>.png; current copies of the useful ones live in docs/screenshots/).

Browser tests run against SQLite only: the rules they exercise are tested on both backends below the
HTTP layer.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from app.core.config import PROJECT_ROOT, Settings
from app.core.db import Database
from app.main import create_app
from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@dataclass
class LiveServer:
    url: str
    db: Database
    settings: Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveServer]:
    path = tmp_path / "prefloop.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=f"sqlite:///{path}",
        SECRET_KEY="browser-test-secret",
        RUN_BACKGROUND=False,
        CREATE_FIRST_ADMIN=False,
        QUEUE_EMPTY_RETRY_S=1,
        _env_file=None,
    )
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", db=app.state.db, settings=settings)
    server.should_exit = True
    thread.join(timeout=10)


# Per module, not per session: while Playwright's sync API is open it keeps an event loop running in
# the main thread, and tests after the browser tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, server: LiveServer, username: str, next: str = "/") -> None:
    """Sign in through the login form and wait for the page it leads to."""
    page.goto(f"{server.url}/login?next={next}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}{next}")


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save the page as test-artifacts/<name>.png (gitignored) and return the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    return path
