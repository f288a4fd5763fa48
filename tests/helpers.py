"""Builders shared by the tests: accounts, tokens, and a browser-style login."""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi.testclient import TestClient

from app.auth import service as auth_service
from app.auth.models import Role, Scope
from app.core.db import Database

PASSWORD = "correct horse battery"


def make_user(db: Database, username: str, role: Role = Role.annotator, password: str = PASSWORD) -> int:
    with db.session() as session:
        return auth_service.create(
            db=session, username=username, password=password, role=role, min_password_length=8
        ).id


def make_token(db: Database, username: str, scopes: Iterable[Scope] | None = None) -> str:
    """A token for username with these scopes (default: all its role allows)."""
    with db.session() as session:
        user = auth_service.get_by_username(db=session, username=username)
        return auth_service.create_token(db=session, user=user, name="test", scopes=scopes)[1]


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
