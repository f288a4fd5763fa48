"""The console's users and API tokens (/admin/users, /admin/tokens): accounts, roles, passwords, whether an
annotator's judgments train, and tokens an admin makes for other users. Signing in and a user's own
account are in pages.py."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, PageAdmin, SessionDep, SettingsDep
from app.auth import service, sessions, token_reveal
from app.auth.models import Role, Scope, User
from app.core.db import utcnow
from app.core.errors import Unprocessable
from app.core.pages import confirm_page, console_page, local_target, redirect_with_flash, rerender_if_refused
from app.core.text import Text

router = APIRouter()


def _role(value: str) -> Role:
    if value not in Role.__members__:
        raise Unprocessable(f"Role must be admin or annotator (got {value!r}).", loc=("role",))
    return Role(value)


def _users_context(db: Session, **extra: Any) -> dict[str, Any]:
    tokens = service.list_tokens(db=db)
    users = service.list_(db=db)
    names = {u.id: u.username for u in users}
    live = Counter(token.user_id for token in tokens if token.revoked_at is None)
    return {
        "users": users,
        "tokens": tokens,
        "names": names,
        "live_tokens": live,
        "roles": list(Role),
        "form": {},
        "now": utcnow(),
        **extra,
    }


@router.get("/users")
def users(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    new_token = token_reveal.take(request, secret_key=settings.secret_key)
    return console_page(request, "users", _users_context(db, **new_token))


@router.post("/users", dependencies=[CsrfChecked])
def create_user(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[Text, Form(max_length=64)] = "",
    password: Annotated[Text, Form(max_length=1024)] = "",
    role: Annotated[Text, Form(max_length=16)] = Role.annotator.value,
) -> Response:
    form = {"username": username, "role": role}
    with rerender_if_refused("users", lambda page_db: _users_context(page_db, form=form)):
        user = service.create(
            db=db,
            username=username,
            password=password,
            role=_role(role),
            min_password_length=settings.MIN_PASSWORD_LENGTH,
        )
    return redirect_with_flash(request, "/admin/users", f"Created {user.role.value} {user.username}.")


def deactivation_message(db: Session, user: User) -> str:
    """What deactivating `user` will do, for the admin to confirm."""
    tokens = sum(token.revoked_at is None for token in service.list_tokens(db=db, user=user))
    revoked = f"their {tokens} API token{'' if tokens == 1 else 's'} revoked for good" if tokens else "no API tokens"
    return (
        f"Deactivate {user.username}? They are signed out everywhere and can no longer sign in; {revoked} "
        "(reactivating does not bring tokens back). Their judgments stay."
    )


@router.post("/users/{user_id}/active", dependencies=[CsrfChecked])
def set_user_active(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    admin: PageAdmin,
    active: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=200)] = "/admin/users",
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    back = local_target(next, "/admin/users", within="/admin")
    with rerender_if_refused("users", _users_context):
        user = service.get_or_raise(db=db, user_id=user_id)
        # Deactivating yourself is refused by the service below at once, without asking first.
        if not active and user.is_active and user.id != admin.id and not confirmed:
            return confirm_page(
                request,
                message=deactivation_message(db, user),
                action=f"/admin/users/{user_id}/active",
                confirm_label=f"Deactivate {user.username}",
                back=back,
                section=back.removeprefix("/admin/").partition("/")[0] or "users",
                fields={"active": "false", "next": back},
            )
        service.set_active(db=db, actor=admin, user=user, active=active)
    state = "active" if active else "deactivated: signed out, tokens revoked"
    return redirect_with_flash(request, back, f"{user.username} is now {state}.")


@router.post("/users/{user_id}/training", dependencies=[CsrfChecked])
def set_user_training(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    excluded: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=200)] = "/admin/users",
) -> Response:
    user = service.get_or_raise(db=db, user_id=user_id)
    service.set_excluded_from_training(db=db, user=user, excluded=excluded)
    verdict = "excluded from" if excluded else "included in"
    back = local_target(next, "/admin/users", within="/admin")
    return redirect_with_flash(request, back, f"{user.username}'s judgments are now {verdict} training.")


@router.post("/users/{user_id}/role", dependencies=[CsrfChecked])
def set_user_role(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    role: Annotated[Text, Form(max_length=16)],
) -> Response:
    with rerender_if_refused("users", _users_context):
        user = service.get_or_raise(db=db, user_id=user_id)
        service.set_role(db=db, user=user, role=_role(role))
    return redirect_with_flash(request, "/admin/users", f"{user.username} is now an {user.role.value}.")


@router.post("/users/{user_id}/password", dependencies=[CsrfChecked])
def reset_user_password(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    settings: SettingsDep,
    admin: PageAdmin,
    password: Annotated[Text, Form(max_length=1024)] = "",
) -> Response:
    with rerender_if_refused("users", _users_context):
        user = service.get_or_raise(db=db, user_id=user_id)
        # An admin resetting their own password stays signed in here, as on their account page.
        own_session = request.session.get(sessions.COOKIE_KEY) if user.id == admin.id else None
        service.set_password(
            db=db,
            user=user,
            password=password,
            min_password_length=settings.MIN_PASSWORD_LENGTH,
            keep_session=own_session,
        )
    message = f"{user.username} has a new password and is signed out everywhere."
    return redirect_with_flash(request, "/admin/users", message)


@router.post("/users/{user_id}/tokens", dependencies=[CsrfChecked])
def create_token(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    settings: SettingsDep,
    admin: PageAdmin,
    scopes: Annotated[list[Scope], Form(default_factory=list)],
    name: Annotated[Text, Form(max_length=100)] = "",
    expires_in_days: Annotated[int | None, Form(ge=1, le=service.MAX_TOKEN_DAYS)] = None,
) -> Response:
    user = service.get_or_raise(db=db, user_id=user_id)
    with rerender_if_refused("users", _users_context):
        if not name.strip():
            raise Unprocessable("Give the token a name (e.g. what will use it).", loc=("name",))
        _api_token, token = service.create_token(
            db=db,
            user=user,
            name=name.strip(),
            scopes=scopes,
            expires_in_days=expires_in_days,
            grantor=service.session_grant(admin),
        )
    token_reveal.hold(request, secret_key=settings.secret_key, token=token, owner=user.username)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(request: Request, token_id: IdPath, db: SessionDep) -> Response:
    api_token = service.revoke_token(db=db, token_id=token_id)
    message = f"Token {api_token.name} (pfl_{api_token.prefix}_…) is revoked."
    return redirect_with_flash(request, "/admin/users", message)
