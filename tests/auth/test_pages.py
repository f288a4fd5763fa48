"""Browser sign-in through HTTP: sessions, CSRF, redirects (throttling: test_throttle.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import ApiToken, Role, User
from tests.factories import PASSWORD, make_user
from tests.helpers import csrf_from, login, session_cookie_text


def test_anonymous_browser_is_redirected_to_login(client):
    response = client.get("/account", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account"


def test_login_sets_httponly_lax_cookie_and_opens_pages(client, db):
    make_user(db, "alice")
    response = login(client, "alice")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/account")
    assert page.status_code == 200 and "alice" in page.text


def test_wrong_password_is_rejected_without_revealing_the_account(client, db):
    make_user(db, "alice")
    wrong = login(client, "alice", "not the password")
    unknown = login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.text and "Wrong username or password." in unknown.text
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_login_without_csrf_token_is_refused(client, db):
    make_user(db, "alice")
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "security token" in response.text
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_form_post_with_wrong_csrf_token_changes_nothing(client, db):
    make_user(db, "alice")
    login(client, "alice")
    response = client.post(
        "/account/tokens", data={"name": "x", "csrf_token": "forged"}, headers={"accept": "text/html"}
    )
    assert response.status_code == 403
    assert "No tokens yet." in client.get("/account").text


def test_logout_ends_the_session(client, db):
    make_user(db, "alice")
    login(client, "alice")
    csrf = csrf_from(client.get("/account").text)
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_forged_session_cookie_is_treated_as_anonymous(client, db):
    make_user(db, "alice")
    client.cookies.set("prefloop_session", "eyJ1c2VyX2lkIjogMX0=.forged.signature")
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_expired_session_cookie_is_treated_as_anonymous(app, client, db, settings):
    make_user(db, "alice")
    login(client, "alice")
    assert client.get("/account", follow_redirects=False).status_code == 200
    # itsdangerous checks the signature's age against max_age: a cookie from the past is refused.
    from itsdangerous import TimestampSigner

    cookie = client.cookies.get("prefloop_session")
    payload = cookie.rsplit(".", 2)[0]
    signer = TimestampSigner(settings.secret_key)
    old = signer.sign(payload)  # re-sign, then pretend the clock moved past max_age
    client.cookies.set("prefloop_session", old.decode())
    import time
    from unittest import mock

    with mock.patch.object(time, "time", return_value=time.time() + settings.SESSION_MAX_AGE_S + 60):
        assert client.get("/account", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"])
def test_open_redirect_after_login_is_refused(client, db, target):
    make_user(db, "alice")
    csrf = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf, "next": target},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_revoking_a_token_id_beyond_the_database_range_is_a_422(client, db):
    make_user(db, "alice")
    login(client, "alice")
    csrf = csrf_from(client.get("/account").text)
    response = client.post(f"/account/tokens/{2**63}/revoke", data={"csrf_token": csrf})
    assert response.status_code == 422


def test_a_refused_token_shows_its_reason_on_the_account_page(client, db):
    make_user(db, "alice")
    login(client, "alice")
    csrf = csrf_from(client.get("/account").text)
    response = client.post("/account/tokens", data={"csrf_token": csrf, "name": "ci"}, headers={"accept": "text/html"})
    assert response.status_code == 422
    assert "at least one scope" in response.text and "Your account" in response.text


def test_deactivated_user_loses_browser_session(client, db):
    user_id = make_user(db, "alice")
    login(client, "alice")
    with db.session() as session:
        session.get(User, user_id).is_active = False
    assert client.get("/account", follow_redirects=False).status_code == 303


def test_token_created_in_browser_is_shown_once_and_works(client, db):
    make_user(db, "alice", role=Role.annotator)
    login(client, "alice")
    csrf = csrf_from(client.get("/account").text)
    created = client.post(
        "/account/tokens", data={"name": "notebook", "scopes": "annotate", "csrf_token": csrf}, follow_redirects=False
    )
    # Post/redirect/get: a reload of the page that shows the token does not create another one.
    assert (created.status_code, created.headers["location"]) == (303, "/account")
    shown = client.get("/account").text
    token = shown.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("pfl_")
    assert 'data-copy="new-token"' in shown
    assert token not in session_cookie_text(created) and "pfl_" not in session_cookie_text(created)
    assert token not in client.get("/account").text  # shown once
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 1
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["username"] == "alice"
