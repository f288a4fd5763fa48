"""Token scopes and expiry: every /api/v1 route declares a scope, each route family enforces it, tokens
expire, and no credential mints a token that may do more (or live longer) than itself."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.deps import ApiUser, ScopeRequired
from app.auth.models import ApiToken, Role, Scope
from app.core.db import utcnow
from app.core.errors import install_error_handlers
from tests.factories import make_token, make_user
from tests.helpers import csrf_from, login


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def msg(response) -> str:
    return response.json()["detail"][0]["msg"]


def declared_scopes(dependant) -> list[ScopeRequired]:
    found = [dependant.call] if isinstance(dependant.call, ScopeRequired) else []
    for sub in dependant.dependencies:
        found += declared_scopes(sub)
    return found


def api_routes(app) -> list[RouteContext]:
    """Every JSON route as served, with the dependencies of the routers it is included through."""
    return [r for r in iter_route_contexts(app.routes) if (r.path or "").startswith("/api/v1")]


# --- every route declares a scope ------------------------------------------------------------------


def test_every_api_route_declares_a_scope(app):
    routes = api_routes(app)
    assert len(routes) > 40
    undeclared = [f"{sorted(r.methods)} {r.path}" for r in routes if not declared_scopes(r.dependant)]
    assert undeclared == [], "each /api/v1 route needs scope_required(...) (app/router.py or its decorator)"


def test_route_families_declare_the_scope_they_need(app):
    def needs(path: str, method: str) -> set[Scope | None]:
        route = next(r for r in api_routes(app) if r.path == path and method in r.methods)
        return {d.scope for d in declared_scopes(route.dependant)}

    assert needs("/api/v1/queue/next", "GET") == {Scope.annotate}
    assert needs("/api/v1/judgments", "POST") == {Scope.annotate}
    assert needs("/api/v1/judgments", "GET") == {Scope.export}
    assert needs("/api/v1/export", "GET") == {Scope.export}
    assert needs("/api/v1/prompts", "GET") == {Scope.admin}
    assert needs("/api/v1/users", "GET") == {Scope.admin}
    assert needs("/api/v1/me", "GET") == {None}
    assert needs("/api/v1/tokens", "POST") == {None}


def test_a_route_that_declares_no_scope_refuses_every_request(db):
    router = APIRouter()

    @router.get("/api/v1/forgotten")
    def forgotten(user: ApiUser) -> dict:
        return {"user": user.username}

    bare = FastAPI()
    bare.state.db = db
    install_error_handlers(bare)
    bare.include_router(router)
    make_user(db, "root", role=Role.admin)
    with TestClient(bare, raise_server_exceptions=False) as test_client:
        response = test_client.get("/api/v1/forgotten", headers=bearer(make_token(db, "root")))
    assert response.status_code == 500


# --- enforcement per route family ------------------------------------------------------------------

FAMILIES = [
    ("GET", "/api/v1/queue/next", None, Scope.annotate),
    ("POST", "/api/v1/judgments", {"comparison_id": 999, "choice": "left"}, Scope.annotate),
    ("POST", "/api/v1/queue/999/release", None, Scope.annotate),
    ("GET", "/api/v1/judgments", None, Scope.export),
    ("GET", "/api/v1/export?format=trl", None, Scope.export),
    ("GET", "/api/v1/prompts", None, Scope.admin),
    ("GET", "/api/v1/stats/progress", None, Scope.admin),
    ("GET", "/api/v1/policies", None, Scope.admin),
    ("GET", "/api/v1/rounds", None, Scope.admin),
    ("GET", "/api/v1/webhooks", None, Scope.admin),
    ("GET", "/api/v1/users", None, Scope.admin),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), FAMILIES, ids=[f[1] for f in FAMILIES])
def test_each_route_family_needs_its_scope(client, db, method, path, body, scope):
    make_user(db, "root", role=Role.admin)
    without = bearer(make_token(db, "root", scopes=set(Scope) - {scope}))
    refused = client.request(method, path, json=body, headers=without)
    assert refused.status_code == 403
    assert msg(refused) == f"This token lacks the '{scope}' scope, which this request needs."

    only = bearer(make_token(db, "root", scopes=[scope]))
    assert client.request(method, path, json=body, headers=only).status_code not in (401, 403)


@pytest.mark.parametrize("scope", list(Scope))
def test_me_and_own_tokens_work_with_any_scope(client, db, scope):
    make_user(db, "root", role=Role.admin)
    headers = bearer(make_token(db, "root", scopes=[scope]))
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.get("/api/v1/tokens", headers=headers).status_code == 200


def test_a_scope_never_grants_more_than_the_role(client, db):
    make_user(db, "ann", role=Role.annotator)
    token = make_token(db, "ann")
    with db.session() as session:  # a token row claiming more than the role (e.g. written by hand)
        session.scalar(select(ApiToken)).scopes = [s.value for s in Scope]
    for path in ("/api/v1/prompts", "/api/v1/judgments"):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 403 and msg(response) == "Admin role required."


def test_browser_session_has_every_scope_its_role_allows(client, db):
    make_user(db, "root", role=Role.admin)
    login(client, "root")
    assert client.get("/api/v1/prompts").status_code == 200
    assert client.get("/api/v1/judgments").status_code == 200
    assert client.get("/api/v1/queue/next").status_code == 204
    csrf = csrf_from(client.get("/account").text)
    created = client.post("/api/v1/tokens", json={"name": "s"}, headers={"X-CSRF-Token": csrf}).json()
    assert sorted(created["scopes"]) == ["admin", "annotate", "export"] and created["expires_at"] is None


# --- expiry -----------------------------------------------------------------------------------------


def test_expired_token_is_401_expired(client, db):
    make_user(db, "ann")
    token = make_token(db, "ann")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    with db.session() as session:
        session.scalar(select(ApiToken)).expires_at = utcnow() - timedelta(seconds=1)
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401 and "expired" in msg(response)
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/queue/next", headers=bearer(token)).status_code == 401


def test_token_with_expiry_in_days_or_at_a_time(client, db, annotator_token):
    in_days = client.post("/api/v1/tokens", json={"name": "week", "expires_in_days": 7}, headers=annotator_token)
    assert in_days.status_code == 201
    expires = in_days.json()["expires_at"]
    assert expires.startswith((utcnow() + timedelta(days=7)).date().isoformat())
    at = (utcnow() + timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    fixed = client.post("/api/v1/tokens", json={"name": "t", "expires_at": at.isoformat()}, headers=annotator_token)
    assert fixed.status_code == 201 and fixed.json()["expires_at"].startswith(at.isoformat())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 100_000}, "expires_in_days"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_in_days": 1, "expires_at": "2999-01-01T00:00:00Z"}, None),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["root"]}, "scopes"),
    ],
)
def test_bad_expiry_or_scopes_are_422_and_store_nothing(client, db, annotator_token, body, field):
    response = client.post("/api/v1/tokens", json={"name": "bad", **body}, headers=annotator_token)
    assert response.status_code == 422, response.text
    if field:
        assert field in response.json()["detail"][0]["loc"]
    with db.session() as session:
        assert session.scalars(select(ApiToken.name)).all() == ["test"]


# --- minting: no escalation ---------------------------------------------------------------------------


def test_annotators_cannot_mint_admin_tokens(client, db, annotator_token):
    for scopes in (["admin"], ["annotate", "export"]):
        response = client.post("/api/v1/tokens", json={"name": "x", "scopes": scopes}, headers=annotator_token)
        assert response.status_code == 422
        assert "An annotator account cannot hold the" in msg(response)
    default = client.post("/api/v1/tokens", json={"name": "x"}, headers=annotator_token)
    assert default.status_code == 201 and default.json()["scopes"] == ["annotate"]


def test_annotator_in_the_browser_cannot_mint_admin_tokens(client, db):
    make_user(db, "ann")
    login(client, "ann")
    csrf = csrf_from(client.get("/account").text)
    response = client.post("/account/tokens", data={"name": "x", "scopes": ["annotate", "admin"], "csrf_token": csrf})
    assert response.status_code == 422 and "cannot hold the 'admin' scope" in html.unescape(response.text)


def test_admins_cannot_give_an_annotator_an_admin_token(client, db, admin_token):
    ann = make_user(db, "ann")
    response = client.post(f"/api/v1/users/{ann}/tokens", json={"scopes": ["admin"]}, headers=admin_token)
    assert response.status_code == 422 and "annotator account cannot hold the 'admin' scope" in msg(response)
    default = client.post(f"/api/v1/users/{ann}/tokens", json={}, headers=admin_token)
    assert default.status_code == 201 and default.json()["scopes"] == ["annotate"]


def test_a_token_cannot_mint_scopes_it_does_not_hold(client, db):
    make_user(db, "root", role=Role.admin)
    annotate_only = bearer(make_token(db, "root", scopes=[Scope.annotate]))
    escalated = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["admin"]}, headers=annotate_only)
    assert escalated.status_code == 403
    assert msg(escalated) == "You cannot grant the 'admin' scope: the credential you are using does not hold it."
    default = client.post("/api/v1/tokens", json={"name": "x"}, headers=annotate_only)
    assert default.status_code == 201 and default.json()["scopes"] == ["annotate"]
    ann = make_user(db, "ann")
    for_other = client.post(f"/api/v1/users/{ann}/tokens", json={}, headers=annotate_only)
    assert for_other.status_code == 403


def test_a_token_cannot_mint_a_token_that_outlives_it(client, db):
    make_user(db, "ann")
    short = client.post("/api/v1/tokens", json={"expires_in_days": 1}, headers=bearer(make_token(db, "ann")))
    short_headers = bearer(short.json()["token"])
    longer = client.post("/api/v1/tokens", json={"expires_in_days": 30}, headers=short_headers)
    assert longer.status_code == 403 and "cannot outlive" in msg(longer)
    inherited = client.post("/api/v1/tokens", json={}, headers=short_headers)
    assert inherited.status_code == 201 and inherited.json()["expires_at"] == short.json()["expires_at"]


def test_without_the_admin_scope_an_admin_sees_and_revokes_only_their_own_tokens(client, db):
    make_user(db, "root", role=Role.admin)
    make_user(db, "ann")
    make_token(db, "ann")
    with db.session() as session:
        ann_token_id = session.scalar(select(ApiToken.id))
    annotate_only = bearer(make_token(db, "root", scopes=[Scope.annotate]))
    assert {t["user_id"] for t in client.get("/api/v1/tokens", headers=annotate_only).json()} == {
        client.get("/api/v1/me", headers=annotate_only).json()["id"]
    }
    assert client.delete(f"/api/v1/tokens/{ann_token_id}", headers=annotate_only).status_code == 404
    admin = bearer(make_token(db, "root", scopes=[Scope.admin]))
    assert client.delete(f"/api/v1/tokens/{ann_token_id}", headers=admin).status_code == 200


# --- the console and the account page show scopes and expiry -----------------------------------------


def test_console_and_account_page_show_scopes_and_expiry(client, db):
    make_user(db, "root", role=Role.admin)
    ann = make_user(db, "ann")
    login(client, "root")
    csrf = csrf_from(client.get("/admin/users").text)
    created = client.post(
        f"/admin/users/{ann}/tokens",
        data={"name": "vendor", "scopes": ["annotate"], "expires_in_days": "3", "csrf_token": csrf},
    )
    assert [r.status_code for r in created.history] == [303] and "New token for <strong>ann</strong>" in created.text
    refused = client.post(
        f"/admin/users/{ann}/tokens", data={"name": "vendor", "scopes": ["admin"], "csrf_token": csrf}
    )
    assert refused.status_code == 422 and "cannot hold the &#39;admin&#39; scope" in refused.text
    expiry = (utcnow() + timedelta(days=3)).date().isoformat()
    table = client.get("/admin/users").text.split('id="token-table"')[1]
    assert '<td class="scopes">annotate</td>' in table and expiry in table

    client.post(
        "/account/tokens",
        data={"name": "mine", "scopes": ["export", "admin"], "expires_in_days": "2", "csrf_token": csrf},
    )
    with db.session() as session:
        session.scalar(select(ApiToken).where(ApiToken.name == "mine")).expires_at = utcnow() - timedelta(days=1)
    account = client.get("/account").text.split('id="token-table"')[1]
    assert '<td class="scopes">admin export</td>' in account and "expired" in account
