"""Users, sign-ins and API tokens: the only module that reads or writes users and api_tokens (browser
sessions: app/auth/sessions.py; failed sign-ins: app/auth/throttle.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth import sessions, throttle
from app.auth.models import ApiToken, Role, Scope, User
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState, NotAuthenticated, NotFound, PermissionDenied, Unprocessable
from app.core.security import hash_password, hash_token, new_api_token, token_prefix, verify_password

# Token use is recorded at most this often, so a busy client does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_TOKEN_DAYS = 3650


def get(*, db: Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def get_or_raise(*, db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", loc=("path", "user_id"))
    return user


def get_by_username(*, db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username))


def list_(*, db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.id)))


def count_admins(*, db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User).where(User.role == Role.admin)) or 0


def check_password_length(password: str, *, min_length: int, loc: tuple[str, ...] = ("password",)) -> None:
    if len(password) < min_length:
        raise Unprocessable(f"Password must be at least {min_length} characters.", loc=loc)


def create(*, db: Session, username: str, password: str, role: Role, min_password_length: int) -> User:
    """A new account; the username must be free and the password long enough."""
    username = username.strip()
    if not username:
        raise Unprocessable("Username must not be empty.", loc=("username",))
    check_password_length(password, min_length=min_password_length)
    if get_by_username(db=db, username=username) is not None:
        raise Conflict(f"Username '{username}' is already taken.", loc=("username",))
    user = User(username=username, password_hash=hash_password(password), role=role)
    db.add(user)
    db.flush()
    return user


def _keep_an_active_admin(*, db: Session, user: User) -> None:
    """Refuse to take the last active admin away: nobody could sign in to the console to undo it."""
    if not (user.is_admin and user.is_active):
        return
    # Locked, so two admins demoting each other at once cannot both succeed (PostgreSQL; SQLite
    # serializes writers anyway).
    admins = db.scalars(select(User.id).where(User.role == Role.admin, User.is_active.is_(True)).with_for_update())
    if set(admins) <= {user.id}:
        raise InvalidState(f"{user.username} is the last active admin; make another admin first.", loc=("user_id",))


def set_active(*, db: Session, actor: User, user: User, active: bool) -> User:
    """Deactivate (signs the user out everywhere and revokes their tokens) or reactivate an account.
    Either way their old sessions stay dead, and revoked tokens never come back. Nobody deactivates
    their own account (actor: who asks), from the console or the API."""
    if user.is_active == active:
        return user
    if not active and user.id == actor.id:
        raise InvalidState("You cannot deactivate your own account.", loc=("user_id",))
    if not active:
        _keep_an_active_admin(db=db, user=user)
        revoke_user_tokens(db=db, user=user)
    user.is_active = active
    sessions.end_all(db=db, user=user)
    return user


def set_role(*, db: Session, user: User, role: Role) -> User:
    if role != Role.admin:
        _keep_an_active_admin(db=db, user=user)
    user.role = role
    db.flush()
    return user


def set_excluded_from_training(*, db: Session, user: User, excluded: bool) -> User:
    user.excluded_from_training = excluded
    db.flush()
    return user


def set_password(
    *, db: Session, user: User, password: str, min_password_length: int, keep_session: str | None = None
) -> User:
    """A new password; every browser session of the user ends but keep_session (their own, when they
    change it themselves). API tokens stay: they are separate credentials, revoked one by one."""
    check_password_length(password, min_length=min_password_length)
    user.password_hash = hash_password(password)
    sessions.end_all(db=db, user=user, keep=keep_session)
    return user


@dataclass
class LoginResult:
    user: User | None
    retry_after_s: int = 0

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


def authenticate(*, db: Session, settings: Settings, client: str, username: str, password: str) -> LoginResult:
    """Check a password under the sign-in throttle (app/auth/throttle.py). Unknown usernames,
    inactive accounts and wrong passwords fail alike, in the same time. Returns instead of raising
    so the failure count is committed with the response."""
    limits = throttle.login_limits(settings, client=client, username=username)
    if wait := throttle.retry_after_s(db=db, limits=limits):
        return LoginResult(None, retry_after_s=wait)
    user = get_by_username(db=db, username=username.strip())
    # Verify even for unknown users so the response time does not reveal which accounts exist.
    valid = verify_password(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        throttle.record_failure(db=db, settings=settings, limits=limits)
        return LoginResult(None)
    # The owner's own typos from this address are forgiven; the wider counts only age out.
    throttle.forgive(db=db, limit=limits[0])
    return LoginResult(user)


def change_password(
    *,
    db: Session,
    settings: Settings,
    user: User,
    client: str,
    current_password: str,
    new_password: str,
    keep_session: str | None,
) -> LoginResult:
    """The user's own password change: the current password is checked as a sign-in is (throttled,
    failures counted); only if it passes is the new one set. Returns that check."""
    check_password_length(new_password, min_length=settings.MIN_PASSWORD_LENGTH, loc=("new_password",))
    result = authenticate(db=db, settings=settings, client=client, username=user.username, password=current_password)
    if result.user is not None:
        set_password(
            db=db,
            user=user,
            password=new_password,
            min_password_length=settings.MIN_PASSWORD_LENGTH,
            keep_session=keep_session,
        )
    return result


@dataclass(frozen=True)
class Grant:
    """What the credential behind a request may do: its scopes, and until when (None: no expiry)."""

    scopes: frozenset[Scope]
    expires_at: datetime | None = None


def session_grant(user: User) -> Grant:
    """A browser session may do everything its role allows."""
    return Grant(user.role_scopes)


def token_grant(api_token: ApiToken) -> Grant:
    return Grant(api_token.granted, api_token.expires_at)


def _scope_list(scopes: Iterable[Scope]) -> str:
    return ", ".join(f"'{s}'" for s in sorted(scopes))


def create_token(
    *,
    db: Session,
    user: User,
    name: str,
    scopes: Iterable[Scope] | None = None,
    expires_at: datetime | None = None,
    expires_in_days: int | None = None,
    grantor: Grant | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for user; the full token is returned once and only its hash is kept.

    scopes default to everything the owner's role allows that the grantor holds. grantor is the
    credential minting the token (None: the operator at the command line): a token never gets a scope
    its grantor lacks, nor outlives it (by default it expires with it).
    """
    wanted = _token_scopes(user, scopes, grantor)
    expires_at = _token_expiry(expires_at, expires_in_days, grantor)
    token, prefix, token_hash = new_api_token()
    api_token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=prefix,
        token_hash=token_hash,
        scopes=sorted(s.value for s in wanted),
        expires_at=expires_at,
    )
    db.add(api_token)
    db.flush()
    return api_token, token


def _token_scopes(user: User, scopes: Iterable[Scope] | None, grantor: Grant | None) -> frozenset[Scope]:
    allowed = user.role_scopes if grantor is None else user.role_scopes & grantor.scopes
    wanted = allowed if scopes is None else frozenset(scopes)
    if not wanted:
        raise Unprocessable("A token needs at least one scope.", loc=("scopes",))
    if beyond_role := wanted - user.role_scopes:
        raise Unprocessable(
            f"An {user.role.value} account cannot hold the {_scope_list(beyond_role)} scope: a scope never "
            f"grants more than the role (an {user.role.value} may have {_scope_list(user.role_scopes)}).",
            loc=("scopes",),
        )
    if grantor is not None and (beyond_grantor := wanted - grantor.scopes):
        raise PermissionDenied(
            f"You cannot grant the {_scope_list(beyond_grantor)} scope: the credential you are using does not hold it.",
            loc=("scopes",),
        )
    return wanted


def _token_expiry(expires_at: datetime | None, expires_in_days: int | None, grantor: Grant | None) -> datetime | None:
    now = utcnow()
    if expires_in_days is not None:
        if expires_at is not None:
            raise Unprocessable("Give expires_in_days or expires_at, not both.", loc=("expires_in_days",))
        if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            raise Unprocessable(f"A token expires in 1 to {MAX_TOKEN_DAYS} days.", loc=("expires_in_days",))
        expires_at = now + timedelta(days=expires_in_days)
    if expires_at is not None and expires_at <= now:
        raise Unprocessable("The expiry must be in the future.", loc=("expires_at",))
    if grantor is None or grantor.expires_at is None:
        return expires_at
    if expires_at is None:
        return grantor.expires_at
    if expires_at > grantor.expires_at:
        raise PermissionDenied(
            f"A token cannot outlive the token that creates it (that one expires "
            f"{grantor.expires_at:%Y-%m-%d %H:%M} UTC).",
            loc=("expires_at",),
        )
    return expires_at


def list_tokens(*, db: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.scalars(query))


def revoke_token(*, db: Session, token_id: int, owner: User | None = None) -> ApiToken:
    """Revoke a token (idempotent). With owner given, only that user's tokens can be revoked."""
    api_token = db.get(ApiToken, token_id)
    if api_token is None or (owner is not None and api_token.user_id != owner.id):
        raise NotFound(f"API token {token_id} does not exist.", loc=("path", "token_id"))
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        db.flush()
    return api_token


def revoke_user_tokens(*, db: Session, user: User) -> None:
    """Revoke every live token of user (on deactivation, so none works again after reactivation)."""
    db.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


def token_for(*, db: Session, token: str) -> ApiToken | None:
    """The live token a presented one names, or None if it is unknown, revoked or its owner deactivated.

    Raises NotAuthenticated, saying so, when the token is genuine but expired.
    """
    prefix = token_prefix(token)
    if prefix is None:
        return None
    api_token = db.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
    if (
        api_token is None
        or api_token.revoked_at is not None
        or not secrets.compare_digest(api_token.token_hash, hash_token(token))
    ):
        return None
    if not api_token.user.is_active:
        return None
    now = utcnow()
    if api_token.expired(now):
        raise NotAuthenticated(
            f"API token expired at {api_token.expires_at:%Y-%m-%d %H:%M} UTC.", loc=("header", "authorization")
        )
    return api_token


def use_to_record(api_token: ApiToken, now: datetime) -> bool:
    """Whether this use should be written as the token's last use (at most once per LAST_USED_RESOLUTION)."""
    return api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION


def record_use(*, db: Session, token_id: int, now: datetime) -> None:
    """Note a use of the token (a write)."""
    db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
