"""Request dependencies as vocabulary: SessionDep, ApiUser, ApiAdmin, PageUser, PageAdmin, CsrfChecked,
and scope_required (the token scope each /api/v1 route declares).

Handlers read as prose: `def list_prompts(db: SessionDep, user: ApiAdmin, ...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, NoReturn

from fastapi import Depends, Path, Request, params
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth import sessions, throttle
from app.auth.models import Scope, User
from app.core.config import Settings
from app.core.db import WRITES, Database, utcnow
from app.core.errors import NotAuthenticated, PermissionDenied, TooManyRequests
from app.core.security import csrf_token_matches

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_settings(request: Request) -> Settings:
    """The app's settings (read once at startup). Async, so it costs no trip to the thread pool."""
    return request.app.state.settings


def get_db(request: Request):
    """One unit of work per request: commit when the handler succeeds, roll back when it raises.

    Declared with scope="function" below so the commit happens before the response is sent: a
    failed commit becomes a 5xx instead of a 200 for data that was never stored. Handlers must
    therefore build their response (schemas, not lazy ORM relationships) before returning.
    A state-changing request takes SQLite's write lock up front (Database.write_session), so it
    waits its turn behind the sampler and the training worker instead of failing half-way.
    """
    db: Database = request.app.state.db
    # A read's own unit of work never writes: on SQLite a transaction that read first fails to write
    # ("database is locked") whenever the sampler or the worker committed in between. What a read
    # request must still write (a token's last use) runs after it, in a write transaction of its own.
    request.state.writes_after_read = []
    with db.session() if request.method in SAFE_METHODS else db.write_session() as session:
        yield session
    for write in request.state.writes_after_read:
        with db.write_session() as session:
            write(db=session)


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


class LoginRequired(Exception):
    """An anonymous browser on a page: redirected to the login page (see app.main)."""


def _session_user(request: Request, db: Session) -> User | None:
    session_id = request.session.get(sessions.COOKIE_KEY)
    if not isinstance(session_id, str):
        return None
    user = sessions.user_for(db=db, session_id=session_id)
    if user is None:
        request.session.clear()
    return user


def client_address(request: Request) -> str:
    """Who is asking, for throttling. Behind a reverse proxy uvicorn puts the forwarded address here,
    for proxies it trusts (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ScopeRequired:
    """Declares the token scope an /api/v1 route needs (None: any scope, for the caller's own account).

    Routers declare theirs in app/router.py, a few routes in their decorator. Declaring runs before the
    route's other dependencies and only records the need: api_user enforces it once it knows the
    credential, which the annotation routes learn inside their unit of work (app/api/annotator_work.py).
    """

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> None:
        needed: frozenset[Scope] = getattr(request.state, "scopes_needed", frozenset())
        request.state.scopes_needed = (needed | {self.scope}) if self.scope else needed


def scope_required(scope: Scope | None) -> params.Depends:
    return Depends(ScopeRequired(scope))


def _with_scopes(request: Request, user: User, grant: auth_service.Grant) -> User:
    """user, once the credential holds every scope the route declared; the grant is kept for api_grant."""
    needed = getattr(request.state, "scopes_needed", None)
    if needed is None:
        # Fail closed; tests/auth/test_scopes.py checks that every /api/v1 route declares a scope.
        raise RuntimeError(f"{request.method} {request.url.path} declares no token scope")
    if not needed <= user.role_scopes:
        # Only the admin role has scopes beyond annotate.
        raise PermissionDenied("Admin role required.")
    if missing := needed - grant.scopes:
        raise PermissionDenied(
            f"This token lacks the '{min(missing)}' scope, which this request needs.", loc=("header", "authorization")
        )
    request.state.grant = grant
    return user


def _count_bad_token(request: Request, db: Session) -> NoReturn:
    """Refuse a bad token: 401, or 429 once its client used up its allowance of bad tokens.

    Only bad tokens are throttled. A valid one is a 256-bit secret nobody guesses, so refusing it would
    not slow an attacker down, only lock out the honest scripts that share the attacker's address
    (a NAT, a proxy), and checking the throttle first would cost every request a query.
    """
    settings: Settings = request.app.state.settings
    limits = throttle.token_limits(settings, client=client_address(request))
    if wait := throttle.retry_after_s(db=db, limits=limits):
        raise TooManyRequests(
            f"Too many bad API tokens from your address; try again in {wait} seconds.",
            retry_after_s=wait,
            loc=("header", "authorization"),
        )
    # The 401 below rolls the request's unit of work back, so the failure is committed first, in a
    # transaction of its own (SQLite cannot turn a read snapshot into a write safely).
    db.rollback()
    throttle.record_failure(db=db, settings=settings, limits=limits)
    db.commit()
    raise NotAuthenticated("Invalid or revoked API token.", loc=("header", "authorization"))


def _write(request: Request, db: Session, write: Callable[..., None]) -> None:
    """`write(db=session)` in the request's unit of work `db` if it is a write one (a write_session: a
    state-changing request, or an annotation route's AnnotatorWork), else right after it (see get_db)."""
    if db.info.get(WRITES):
        write(db=db)
    else:
        request.state.writes_after_read.append(write)


def api_user(request: Request, db: SessionDep) -> User:
    """A token holder (Authorization: Bearer), or the browser's own session plus its CSRF header, with
    the scopes the route declares (a session has every scope its role allows). A client that sent too
    many bad tokens gets 429 for each further bad one until its wait is over."""
    token = _bearer_token(request)
    if token is not None:
        api_token = auth_service.token_for(db=db, token=token)
        if api_token is None:
            _count_bad_token(request, db)
        now = utcnow()
        if auth_service.use_to_record(api_token, now):
            _write(request, db, functools.partial(auth_service.record_use, token_id=api_token.id, now=now))
        return _with_scopes(request, api_token.user, auth_service.token_grant(api_token))
    if request.headers.get("authorization"):
        raise NotAuthenticated("Use 'Authorization: Bearer <token>'.", loc=("header", "authorization"))
    user = _session_user(request, db)
    if user is None:
        raise NotAuthenticated("Authentication required: send 'Authorization: Bearer <token>'.")
    if request.method not in SAFE_METHODS and not csrf_token_matches(
        request.session, request.headers.get("x-csrf-token")
    ):
        raise PermissionDenied("Missing or invalid CSRF token (X-CSRF-Token header).", loc=("header",))
    return _with_scopes(request, user, auth_service.session_grant(user))


async def api_grant(request: Request, _user: Annotated[User, Depends(api_user)]) -> auth_service.Grant:
    """What the request's credential may do (its scopes and expiry), for routes that mint tokens."""
    return request.state.grant


def api_admin(user: Annotated[User, Depends(api_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("Admin role required.")
    return user


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in, as templates see it (`current_user`)."""

    id: int
    username: str
    is_admin: bool


def page_user(request: Request, db: SessionDep) -> User:
    """The browser session's user; an anonymous browser is sent to the login page (LoginRequired)."""
    user = _session_user(request, db)
    if user is None:
        raise LoginRequired()
    # The page layout shows who is signed in. A copy of plain values: an error page is rendered after the
    # request's transaction was rolled back, which expires the ORM object.
    request.state.user = SignedIn(id=user.id, username=user.username, is_admin=user.is_admin)
    return user


def page_admin(user: Annotated[User, Depends(page_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("This page is for admins.")
    return user


async def csrf_checked(request: Request) -> None:
    """Every state-changing form carries the session's CSRF token (a hidden field or header)."""
    if request.method in SAFE_METHODS:
        return
    submitted = request.headers.get("x-csrf-token")
    if submitted is None and "form" in request.headers.get("content-type", ""):
        field = (await request.form()).get("csrf_token")
        submitted = field if isinstance(field, str) else None  # a file upload is no token
    if not csrf_token_matches(request.session, submitted):
        raise PermissionDenied("Your form has expired or is missing its security token; reload the page.")


ApiUser = Annotated[User, Depends(api_user)]
ApiAdmin = Annotated[User, Depends(api_admin)]
ApiGrant = Annotated[auth_service.Grant, Depends(api_grant)]
PageUser = Annotated[User, Depends(page_user)]
PageAdmin = Annotated[User, Depends(page_admin)]
CsrfChecked = Depends(csrf_checked)

# Ids are 32-bit integers in the database; a larger one names nothing and must be a 422, not a
# database overflow error (PostgreSQL rejects it with a 500 otherwise).
MAX_DB_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
