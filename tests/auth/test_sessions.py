"""Browser sessions that end: sign-out, re-sign-in, deactivation, password change and admin reset end
them server-side, so a copy of the cookie taken earlier is worthless; the last active admin stays;
the cookie is Secure over https."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.auth.models import ApiToken, Role, User
from app.core.security import verify_password
from tests.factories import PASSWORD, make_token, make_user
from tests.helpers import csrf_from, login

COOKIE = "prefloop_session"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def browser(app):
    """Another browser on the same app, for a second session of one user."""
    with TestClient(app, raise_server_exceptions=False) as other:
        yield other


def replay(client: TestClient, cookie: str) -> None:
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie)


def token_count(db, username: str) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(ApiToken).join(User).where(User.username == username))


def test_a_cookie_replayed_after_logout_is_refused_and_cannot_mint_a_token(client, db):
    make_user(db, "alice")
    assert login(client, "alice").status_code == 303
    csrf = csrf_from(client.get("/account").text)
    stolen = client.cookies.get(COOKIE)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303

    replay(client, stolen)
    assert client.get("/api/v1/me").status_code == 401
    minted = client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert minted.status_code == 401
    form = client.post("/account/tokens", data={"name": "x", "csrf_token": csrf}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"].startswith("/login")
    assert token_count(db, "alice") == 0


def test_signing_in_again_ends_the_session_the_browser_had(client, db):
    make_user(db, "alice")
    make_user(db, "bob")
    login(client, "alice")
    before = client.cookies.get(COOKIE)
    login(client, "bob")
    assert client.get("/api/v1/me").json()["username"] == "bob"
    replay(client, before)
    assert client.get("/api/v1/me").status_code == 401


def test_deactivate_then_reactivate_revives_neither_old_cookie_nor_token(client, browser, db, admin_token):
    user_id = make_user(db, "erin")
    token = {"Authorization": f"Bearer {make_token(db, 'erin')}"}
    login(browser, "erin")
    cookie = browser.cookies.get(COOKIE)
    assert browser.get("/api/v1/me").status_code == 200

    for active in (False, True):
        response = client.patch(f"/api/v1/users/{user_id}", json={"is_active": active}, headers=admin_token)
        assert response.status_code == 200 and response.json()["is_active"] is active

    replay(browser, cookie)
    assert browser.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=token).status_code == 401
    with db.session() as session:
        assert session.scalar(select(ApiToken).where(ApiToken.user_id == user_id)).revoked_at is not None
    assert login(browser, "erin").status_code == 303  # the account itself works again
    assert browser.get("/api/v1/me").status_code == 200


def test_password_change_through_the_api_ends_other_sessions_but_keeps_this_one(client, browser, db):
    make_user(db, "alice")
    login(client, "alice")
    login(browser, "alice")
    csrf = csrf_from(client.get("/account").text)
    changed = client.post(
        "/api/v1/me/password",
        headers={"X-CSRF-Token": csrf},
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204
    assert client.get("/api/v1/me").status_code == 200
    assert browser.get("/api/v1/me").status_code == 401
    assert login(browser, "alice", PASSWORD).status_code == 401
    assert login(browser, "alice", NEW_PASSWORD).status_code == 303


def test_password_change_on_the_account_page_ends_other_sessions_but_keeps_this_one(client, browser, db):
    make_user(db, "alice")
    login(client, "alice")
    login(browser, "alice")
    csrf = csrf_from(client.get("/account").text)
    page = client.post(
        "/account/password", data={"csrf_token": csrf, "current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert page.status_code == 200 and "Your password is changed." in page.text
    assert client.get("/account", follow_redirects=False).status_code == 200
    assert browser.get("/account", follow_redirects=False).status_code == 303


def test_password_change_with_a_wrong_current_password_is_refused_and_counted(client, db, settings, admin_token):
    make_user(db, "alice")
    token = {"Authorization": f"Bearer {make_token(db, 'alice')}"}
    body = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    for _ in range(settings.LOGIN_FAILURES_PER_CLIENT_USERNAME):
        wrong = client.post("/api/v1/me/password", json=body, headers=token)
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0]["loc"] == ["body", "current_password"]
    throttled = client.post("/api/v1/me/password", json={**body, "current_password": PASSWORD}, headers=token)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    short = client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=token
    )
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["new_password"]
    with db.session() as session:  # nothing was changed
        stored = session.scalar(select(User.password_hash).where(User.username == "alice"))
    assert verify_password(PASSWORD, stored)


def test_admin_reset_in_the_console_ends_every_session_of_the_user(client, browser, db):
    user_id = make_user(db, "alice")
    make_user(db, "boss", role=Role.admin)
    login(browser, "alice")
    login(client, "boss")
    csrf = csrf_from(client.get("/admin/users").text)
    reset = client.post(
        f"/admin/users/{user_id}/password", data={"csrf_token": csrf, "password": NEW_PASSWORD}, follow_redirects=False
    )
    assert reset.status_code == 303
    assert "alice has a new password" in client.get("/admin/users").text
    assert browser.get("/api/v1/me").status_code == 401
    assert login(browser, "alice", NEW_PASSWORD).status_code == 303
    short = client.post(
        f"/admin/users/{user_id}/password",
        data={"csrf_token": csrf, "password": "short"},
        headers={"accept": "text/html"},
    )
    assert short.status_code == 422 and "at least 8 characters" in short.text


def test_an_admin_resetting_their_own_password_in_the_console_stays_signed_in_there(client, browser, db):
    boss = make_user(db, "boss", role=Role.admin)
    login(browser, "boss")
    login(client, "boss")
    csrf = csrf_from(client.get("/admin/users").text)
    reset = client.post(
        f"/admin/users/{boss}/password", data={"csrf_token": csrf, "password": NEW_PASSWORD}, follow_redirects=False
    )
    assert reset.status_code == 303
    assert client.get("/api/v1/me").status_code == 200
    assert browser.get("/api/v1/me").status_code == 401


def test_the_last_active_admin_can_be_neither_deactivated_nor_demoted(client, db, admin_token):
    with db.session() as session:
        root_id = session.scalar(select(User.id).where(User.username == "root-admin"))
    demote = client.patch(f"/api/v1/users/{root_id}", json={"role": "annotator"}, headers=admin_token)
    assert demote.status_code == 409 and "last active admin" in demote.json()["detail"][0]["msg"]
    # Deactivating oneself is refused whoever else is an admin (as in the console), so the last active
    # admin can never be deactivated: any other admin asking is another active admin.
    deactivate = client.patch(f"/api/v1/users/{root_id}", json={"is_active": False}, headers=admin_token)
    assert deactivate.status_code == 409 and "your own account" in deactivate.json()["detail"][0]["msg"]

    second = make_user(db, "deputy", role=Role.annotator)
    promoted = client.patch(f"/api/v1/users/{second}", json={"role": "admin"}, headers=admin_token)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    demoted = client.patch(f"/api/v1/users/{second}", json={"role": "annotator"}, headers=admin_token)
    assert demoted.status_code == 200 and demoted.json()["role"] == "annotator"

    # An inactive admin does not count: with the deputy deactivated, root is still the last one.
    client.patch(f"/api/v1/users/{second}", json={"role": "admin"}, headers=admin_token)
    assert client.patch(f"/api/v1/users/{second}", json={"is_active": False}, headers=admin_token).status_code == 200
    assert client.patch(f"/api/v1/users/{root_id}", json={"role": "annotator"}, headers=admin_token).status_code == 409
    client.patch(f"/api/v1/users/{second}", json={"is_active": True}, headers=admin_token)
    assert client.patch(f"/api/v1/users/{root_id}", json={"is_active": False}, headers=admin_token).status_code == 409


def test_the_console_refuses_to_demote_the_last_active_admin(client, db):
    boss = make_user(db, "boss", role=Role.admin)
    ann = make_user(db, "ann")
    login(client, "boss")
    csrf = csrf_from(client.get("/admin/users").text)
    refused = client.post(
        f"/admin/users/{boss}/role", data={"csrf_token": csrf, "role": "annotator"}, headers={"accept": "text/html"}
    )
    assert refused.status_code == 409 and "last active admin" in refused.text
    promoted = client.post(
        f"/admin/users/{ann}/role", data={"csrf_token": csrf, "role": "admin"}, follow_redirects=False
    )
    assert promoted.status_code == 303
    with db.session() as session:
        assert session.get(User, ann).role == Role.admin and session.get(User, boss).role == Role.admin


def cookie_attributes(response) -> set[str]:
    return {part.strip().lower() for part in response.headers["set-cookie"].split(";")[1:]}


def test_the_session_cookie_is_secure_over_https(app, db):
    make_user(db, "alice")
    with TestClient(app, base_url="https://testserver") as https:
        signed_in = login(https, "alice")
        assert signed_in.status_code == 303
        assert {"secure", "httponly", "samesite=lax"} <= cookie_attributes(signed_in)
        assert https.get("/api/v1/me").status_code == 200


def test_the_session_cookie_is_secure_over_http_when_the_setting_says_so(settings):
    from app.main import create_app

    with TestClient(create_app(settings)) as plain:
        assert "secure" not in cookie_attributes(plain.get("/login"))
    settings.SECURE_COOKIES = True  # TLS ends at a proxy the app cannot see
    with TestClient(create_app(settings)) as behind_tls:
        assert "secure" in cookie_attributes(behind_tls.get("/login"))
