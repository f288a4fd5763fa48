"""Browser pages for signing in and out and for a user's own API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import CsrfChecked, PageUser, SessionDep, SettingsDep
from app.auth import service
from app.core.templates import render
from app.core.text import Text

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # Only local paths: "//evil.example" would be an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: Text = "/") -> Response:
    return render(request, "auth/login.html", {"next": _safe_next(next)})


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


@router.get("/account")
def account_page(request: Request, db: SessionDep, user: PageUser) -> Response:
    tokens = service.list_tokens(db=db, user=user)
    return render(request, "auth/account.html", {"user": user, "tokens": tokens})


@router.post("/account/tokens", dependencies=[CsrfChecked])
def create_token(
    request: Request, db: SessionDep, user: PageUser, name: Annotated[Text, Form(min_length=1, max_length=100)]
) -> Response:
    _api_token, token = service.create_token(db=db, user=user, name=name)
    tokens = service.list_tokens(db=db, user=user)
    return render(request, "auth/account.html", {"user": user, "tokens": tokens, "new_token": token},
                  status_code=201)


@router.post("/account/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(token_id: int, db: SessionDep, user: PageUser) -> Response:
    service.revoke_token(db=db, token_id=token_id, owner=user)
    return RedirectResponse("/account", status_code=303)
