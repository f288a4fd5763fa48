"""Security headers on every kind of response, and templates a script-src without 'unsafe-inline' can run."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.auth.models import Role
from app.core.config import PROJECT_ROOT
from tests.factories import make_user
from tests.helpers import login


def _directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in csp.split(";") if part.strip())}


def assert_security_headers(response) -> None:
    csp = _directives(response.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no other host
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["style-src"] and "'unsafe-inline'" not in csp["default-src"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_pages_api_static_files_and_errors_carry_the_security_headers(client, db, annotator_token):
    make_user(db, "alice")
    responses = {
        "login page": client.get("/login"),
        "anonymous page redirect": client.get("/account", follow_redirects=False),
        "api 401": client.get("/api/v1/queue/next"),
        "api with a token": client.get("/api/v1/tokens", headers=annotator_token),
        "api 422": client.get("/api/v1/prompts/not-a-number", headers=annotator_token),
        "missing page": client.get("/no-such-page", headers={"accept": "text/html"}),
        "static file": client.get("/static/css/app.css"),
        "health": client.get("/healthz"),
    }
    login(client, "alice")
    responses["signed-in account page"] = client.get("/account")  # the page another origin could frame
    for what, response in responses.items():
        assert response.status_code < 500, what
        assert_security_headers(response)
    assert responses["signed-in account page"].status_code == 200
    assert responses["api with a token"].status_code == 200


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_an_unexpected_error_carries_the_security_headers(app, accept):
    # Starlette renders the 500 response outside every middleware, so this is its own path.
    def explode():
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode", headers={"accept": accept})
    assert response.status_code == 500
    assert_security_headers(response)


def test_admin_pages_carry_the_security_headers(client, db):
    make_user(db, "ada", role=Role.admin)
    login(client, "ada")
    for path in ("/admin", "/admin/policies", "/admin/rounds", "/annotate", "/docs"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)


TEMPLATES = sorted((PROJECT_ROOT / "templates").rglob("*.html"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(PROJECT_ROOT / "templates")))
def test_templates_hold_no_code_the_policy_would_block(template):
    """Inline <script> bodies, on* handlers, javascript: URLs and style attributes are refused by the CSP;
    JSON data blocks (<script type="application/json">) are data and stay."""
    html = template.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, f"inline script: {tag}"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "javascript:" not in html
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"
