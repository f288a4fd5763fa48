"""Acting as a browser in API tests: the CSRF token of a page, and a sign-in through the login form."""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient

from app.main import SESSION_COOKIE
from tests.factories import PASSWORD


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD):
    csrf = csrf_from(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf, "next": "/"},
        follow_redirects=False,
    )


def session_cookie_text(response) -> str:
    """What the session cookie a response sets holds, decoded: the cookie is signed, not encrypted, so
    anyone holding it can read this."""
    value = response.cookies[SESSION_COOKIE]
    payload = value.split(".", 1)[0]
    return base64.b64decode(payload + "=" * (-len(payload) % 4)).decode()
