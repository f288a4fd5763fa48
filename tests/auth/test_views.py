"""The accounts API: bearer tokens, roles, and bad input."""

from __future__ import annotations

from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.models import ApiToken, Role, User
from tests.factories import make_token, make_user
from tests.helpers import csrf_from, login


def test_anonymous_api_client_gets_401_with_bearer_challenge(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"][0]["type"] == "not_authenticated"


def test_unknown_and_malformed_tokens_get_401(client):
    for header in ("Bearer pfl_deadbeef_nope", "Bearer garbage", "Basic dXNlcjpwYXNz"):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["detail"][0]["loc"] == ["header", "authorization"]


def test_token_create_use_and_revoke(client, annotator_token):
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=annotator_token)
    assert created.status_code == 201
    body = created.json()
    new_headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/me", headers=new_headers).status_code == 200

    listed = client.get("/api/v1/tokens", headers=annotator_token).json()
    assert {t["prefix"] for t in listed} >= {body["prefix"]}
    assert all("token" not in t for t in listed)
    used = next(t for t in listed if t["id"] == body["id"])
    assert used["last_used_at"] is not None

    revoked = client.delete(f"/api/v1/tokens/{body['id']}", headers=annotator_token)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/me", headers=new_headers).status_code == 401


def test_tokens_are_stored_hashed(client, db, annotator_token):
    token = client.post("/api/v1/tokens", json={"name": "x"}, headers=annotator_token).json()["token"]
    with db.session() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    assert token not in hashes and all(len(h) == 64 for h in hashes)


def test_annotator_cannot_revoke_someone_elses_token(client, db, annotator_token):
    make_user(db, "bob")
    make_token(db, "bob")
    with db.session() as session:
        bob_token_id = session.scalar(select(ApiToken.id).join(User).where(User.username == "bob"))
    response = client.delete(f"/api/v1/tokens/{bob_token_id}", headers=annotator_token)
    assert response.status_code == 404


def test_annotator_gets_403_from_admin_routes(client, annotator_token):
    response = client.get("/api/v1/users", headers=annotator_token)
    assert response.status_code == 403
    assert response.json()["detail"][0]["msg"] == "Admin role required."


def test_admin_creates_user_and_duplicate_is_409(client, db, admin_token):
    created = client.post(
        "/api/v1/users", json={"username": "carol", "password": "long enough pw"}, headers=admin_token
    )
    assert created.status_code == 201 and created.json()["role"] == "annotator"
    duplicate = client.post(
        "/api/v1/users", json={"username": "carol", "password": "another one!"}, headers=admin_token
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"][0]["loc"] == ["username"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.username == "carol")) == 1


def test_short_and_empty_passwords_are_422(client, admin_token):
    short = client.post("/api/v1/users", json={"username": "dave", "password": "short"}, headers=admin_token)
    assert short.status_code == 422 and "at least 8" in short.json()["detail"][0]["msg"]
    empty = client.post("/api/v1/users", json={"username": "dave", "password": ""}, headers=admin_token)
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "password"]


def test_malformed_json_is_422_naming_the_body(client, admin_token):
    response = client.post(
        "/api/v1/users", content=b"{not json", headers={**admin_token, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_admin_deactivates_user_and_their_tokens_stop_working(client, db, admin_token):
    user_id = make_user(db, "erin", role=Role.annotator)
    headers = {"Authorization": f"Bearer {make_token(db, 'erin')}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    response = client.patch(f"/api/v1/users/{user_id}", json={"is_active": False}, headers=admin_token)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_browser_session_can_call_api_but_unsafe_methods_need_csrf_header(client, db):
    make_user(db, "alice")
    login(client, "alice")
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    csrf = csrf_from(client.get("/account").text)
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_admin_creates_token_for_another_user(client, db, admin_token, annotator_token):
    user_id = make_user(db, "vendor-bot")
    created = client.post(f"/api/v1/users/{user_id}/tokens", json={"name": "vendor"}, headers=admin_token)
    assert created.status_code == 201 and created.json()["user_id"] == user_id
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created.json()['token']}"})
    assert me.json()["username"] == "vendor-bot"
    assert client.post(f"/api/v1/users/{user_id}/tokens", json={}, headers=annotator_token).status_code == 403
    missing = client.post("/api/v1/users/9999/tokens", json={}, headers=admin_token)
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_a_read_records_the_token_use_even_when_another_writer_commits_meanwhile(client, db, monkeypatch):
    """A GET reads, and the sampler or the worker may commit before the token's last use is written. On
    SQLite a write in the GET's own transaction then failed with "database is locked" (a 500); the use
    is now written after the read, in a transaction of its own."""
    make_user(db, "reader")
    headers = {"Authorization": f"Bearer {make_token(db, 'reader')}"}
    real_token_for = auth_service.token_for

    def token_for_then_someone_commits(**kwargs):
        found = real_token_for(**kwargs)
        make_user(db, "written-meanwhile")  # another connection commits after this request's first read
        return found

    monkeypatch.setattr(auth_service, "token_for", token_for_then_someone_commits)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    with db.session() as session:
        token = session.scalars(select(ApiToken).join(User).where(User.username == "reader")).one()
        assert token.last_used_at is not None
