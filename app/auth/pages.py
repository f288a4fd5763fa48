"""Browser pages for signing in and out and for a user's own API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import CsrfChecked, PageUser, SessionDep, SettingsDep
from app.auth import service
from app.auth.models import Scope
from app.core.db import utcnow
from app.core.templates import render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # Only local paths: "//evil.example" would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "auth/login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    result = service.authenticate(
        db=db, username=username, password=password,
        max_failures=settings.LOGIN_MAX_FAILURES, lockout_s=settings.LOGIN_LOCKOUT_S,
    )
    context = {"next": _safe_next(next), "username": username}
    if result.throttled:
        context["error"] = f"Too many failed attempts. Try again in {result.retry_after_s} seconds."
        return render(request, "auth/login.html", context, status_code=429,
                      headers={"Retry-After": str(result.retry_after_s)})
    if result.user is None:
        context["error"] = "Wrong username or password."
        return render(request, "auth/login.html", context, status_code=401)
    request.session.clear()
    request.session.update(user_id=result.user.id, epoch=service.session_epoch(result.user))
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _account(request: Request, db: SessionDep, user: PageUser, **extra) -> Response:
    tokens = service.list_tokens(db=db, user=user)
    return render(request, "auth/account.html", {"user": user, "tokens": tokens, "now": utcnow(), **extra},
                  status_code=201 if "new_token" in extra else 200)


@router.get("/account")
def account_page(request: Request, db: SessionDep, user: PageUser) -> Response:
    return _account(request, db, user)


@router.post("/account/tokens", dependencies=[CsrfChecked])
def create_token(
    request: Request, db: SessionDep, user: PageUser, name: Annotated[str, Form(min_length=1, max_length=100)],
    scopes: Annotated[list[Scope], Form(default_factory=list)],
    expires_in_days: Annotated[int | None, Form(ge=1, le=service.MAX_TOKEN_DAYS)] = None,
) -> Response:
    _api_token, token = service.create_token(db=db, user=user, name=name, scopes=scopes,
                                             expires_in_days=expires_in_days, grantor=service.session_grant(user))
    return _account(request, db, user, new_token=token)


@router.post("/account/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(token_id: int, db: SessionDep, user: PageUser) -> Response:
    service.revoke_token(db=db, token_id=token_id, owner=user)
    return RedirectResponse("/account", status_code=303)
