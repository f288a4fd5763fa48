"""Browser pages for signing in and out, and for a user's own password and API tokens (the console's
users and tokens pages are in console_pages.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, PageUser, SessionDep, SettingsDep, client_address
from app.auth import service, sessions, token_reveal
from app.auth.models import Scope, User
from app.core.db import utcnow
from app.core.errors import DomainError
from app.core.pages import local_target
from app.core.templates import render
from app.core.text import Text

router = APIRouter()


@router.get("/login")
def login_page(request: Request, next: Text = "/") -> Response:
    return render(request, "auth/login.html", {"next": local_target(next, "/")})


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[Text, Form(max_length=64)] = "",
    password: Annotated[Text, Form(max_length=1024)] = "",
    next: Annotated[Text, Form(max_length=2000)] = "/",
) -> Response:
    result = service.authenticate(
        db=db, settings=settings, client=client_address(request), username=username, password=password
    )
    context = {"next": local_target(next, "/"), "username": username}
    if result.throttled:
        context["error"] = f"Too many failed attempts. Try again in {result.retry_after_s} seconds."
        return render(
            request, "auth/login.html", context, status_code=429, headers={"Retry-After": str(result.retry_after_s)}
        )
    if result.user is None:
        context["error"] = "Wrong username or password."
        return render(request, "auth/login.html", context, status_code=401)
    # A fresh session id (and CSRF token) at every sign-in: an id planted before it is worth nothing.
    if isinstance(previous := request.session.get(sessions.COOKIE_KEY), str):
        sessions.end(db=db, session_id=previous)
    request.session.clear()
    request.session[sessions.COOKIE_KEY] = sessions.open_(db=db, user=result.user, max_age_s=settings.SESSION_MAX_AGE_S)
    return RedirectResponse(local_target(next, "/"), status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, db: SessionDep) -> Response:
    if isinstance(session_id := request.session.get(sessions.COOKIE_KEY), str):
        sessions.end(db=db, session_id=session_id)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _account(
    request: Request,
    db: Session,
    user: User,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    tokens = service.list_tokens(db=db, user=user)
    return render(
        request,
        "auth/account.html",
        {"user": user, "tokens": tokens, "now": utcnow(), **extra},
        status_code=status_code,
        headers=headers,
    )


@router.get("/account")
def account_page(request: Request, db: SessionDep, settings: SettingsDep, user: PageUser) -> Response:
    held = token_reveal.take(request, secret_key=settings.secret_key)
    return _account(request, db, user, new_token=held.get("new_token"))


@router.post("/account/password", dependencies=[CsrfChecked])
def change_password(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: PageUser,
    current_password: Annotated[Text, Form(max_length=1024)] = "",
    new_password: Annotated[Text, Form(max_length=1024)] = "",
) -> Response:
    try:
        result = service.change_password(
            db=db,
            settings=settings,
            user=user,
            client=client_address(request),
            current_password=current_password,
            new_password=new_password,
            keep_session=request.session.get(sessions.COOKIE_KEY),
        )
    except DomainError as exc:
        return _account(request, db, user, status_code=exc.status_code, password_error=exc.msg)
    if result.throttled:
        return _account(
            request,
            db,
            user,
            status_code=429,
            headers={"Retry-After": str(result.retry_after_s)},
            password_error=f"Too many failed attempts. Try again in {result.retry_after_s} seconds.",
        )
    if result.user is None:
        return _account(request, db, user, status_code=422, password_error="Your current password is wrong.")
    return _account(request, db, user, password_changed=True)


@router.post("/account/tokens", dependencies=[CsrfChecked])
def create_token(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: PageUser,
    name: Annotated[Text, Form(min_length=1, max_length=100)],
    scopes: Annotated[list[Scope], Form(default_factory=list)],
    expires_in_days: Annotated[int | None, Form(ge=1, le=service.MAX_TOKEN_DAYS)] = None,
) -> Response:
    try:
        _api_token, token = service.create_token(
            db=db,
            user=user,
            name=name,
            scopes=scopes,
            expires_in_days=expires_in_days,
            grantor=service.session_grant(user),
        )
    except DomainError as exc:
        return _account(request, db, user, status_code=exc.status_code, token_error=exc.msg)
    token_reveal.hold(request, secret_key=settings.secret_key, token=token, owner=user.username)
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(token_id: IdPath, db: SessionDep, user: PageUser) -> Response:
    service.revoke_token(db=db, token_id=token_id, owner=user)
    return RedirectResponse("/account", status_code=303)
