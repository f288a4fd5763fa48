"""The API reference: /docs serves Swagger UI from the app's own files under the CSP, and
PREFLOOP_API_DOCS decides who may read it and /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.factories import make_token, make_user
from tests.helpers import login

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def docs_client(request, settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"API_DOCS": request.param}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_docs_page_loads_only_files_the_app_serves(client):
    page = client.get("/docs", headers=BROWSER)
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("swagger-ui.css") for url in urls)
    for url in urls:
        assert urlsplit(url).netloc in ("", "testserver"), f"asset from another host: {url}"
        assert client.get(url).status_code == 200, url
    for tag in re.findall(r"<script\b[^>]*>", page.text):
        assert "src=" in tag or 'type="application/json"' in tag, f"inline script: {tag}"
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and "/api/v1/judgments" in schema.json()["paths"]


def test_redoc_which_needs_a_cdn_is_not_served(client):
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize("docs_client", ["login"], indirect=True)
def test_with_login_anonymous_browsers_go_to_login_and_clients_get_401(docs_client):
    redirect = docs_client.get("/docs", headers=BROWSER, follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=/docs"
    for path in ("/docs", "/openapi.json"):
        refused = docs_client.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["detail"][0]["type"] == "not_authenticated"
    bad_token = docs_client.get("/openapi.json", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401


@pytest.mark.parametrize("docs_client", ["login"], indirect=True)
def test_with_login_a_signed_in_browser_and_a_token_holder_may_read(docs_client):
    db = docs_client.app.state.db
    make_user(db, "alice")
    token = {"Authorization": f"Bearer {make_token(db, 'alice')}"}
    assert docs_client.get("/openapi.json", headers=token).status_code == 200
    login(docs_client, "alice")
    assert docs_client.get("/docs", headers=BROWSER).status_code == 200
    assert docs_client.get("/openapi.json").json()["info"]["title"] == "prefloop"


@pytest.mark.parametrize("docs_client", ["off"], indirect=True)
def test_off_serves_neither_the_page_nor_the_schema(docs_client):
    db = docs_client.app.state.db
    make_user(db, "alice")
    login(docs_client, "alice")
    for path in ("/docs", "/openapi.json", "/static/swagger-ui/swagger-ui-bundle.js"):
        assert docs_client.get(path, headers=BROWSER).status_code == 404, path
