"""Users, logins and API tokens: the only module that reads or writes those tables."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, Role, Scope, User
from app.core.db import utcnow
from app.core.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, Unprocessable
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


def create(*, db: Session, username: str, password: str, role: Role, min_password_length: int) -> User:
    """A new account; the username must be free and the password long enough."""
    username = username.strip()
    if not username:
        raise Unprocessable("Username must not be empty.", loc=("username",))
    if len(password) < min_password_length:
        raise Unprocessable(
            f"Password must be at least {min_password_length} characters.", loc=("password",)
        )
    if get_by_username(db=db, username=username) is not None:
        raise Conflict(f"Username '{username}' is already taken.", loc=("username",))
    user = User(username=username, password_hash=hash_password(password), role=role)
    db.add(user)
    db.flush()
    return user


def set_active(*, db: Session, user: User, active: bool) -> User:
    user.is_active = active
    db.flush()
    return user


def set_excluded_from_training(*, db: Session, user: User, excluded: bool) -> User:
    user.excluded_from_training = excluded
    db.flush()
    return user


def session_epoch(user: User) -> str:
    """Changes when the password does, which signs out every browser session of that user."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:12]


@dataclass
class LoginResult:
    user: User | None
    retry_after_s: int = 0

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


def authenticate(
    *, db: Session, username: str, password: str, max_failures: int, lockout_s: int
) -> LoginResult:
    """Check a password, counting failures: past max_failures the account is locked out for a time
    that doubles with each further failure. Returns instead of raising so the count is committed."""
    user = get_by_username(db=db, username=username.strip())
    now = utcnow()
    locked_until = user.locked_until if user else None
    if user is not None and locked_until is not None and locked_until > now:
        return LoginResult(None, retry_after_s=max(1, int((locked_until - now).total_seconds())))
    # Verify even for unknown users so the response time does not reveal which accounts exist.
    valid = verify_password(password, user.password_hash if user else None)
    if user is None:
        return LoginResult(None)
    if not valid or not user.is_active:
        user.failed_logins += 1
        excess = user.failed_logins - max_failures
        if excess >= 0:
            user.locked_until = now + timedelta(seconds=lockout_s * 2 ** min(excess, 10))
        db.flush()
        return LoginResult(None)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.flush()
    return LoginResult(user)


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
    *, db: Session, user: User, name: str, scopes: Iterable[Scope] | None = None,
    expires_at: datetime | None = None, expires_in_days: int | None = None, grantor: Grant | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for user; the full token is returned once and only its hash is kept.

    scopes default to everything the owner's role allows that the grantor holds. grantor is the
    credential minting the token (None: the operator at the command line): a token never gets a scope
    its grantor lacks, nor outlives it (by default it expires with it).
    """
    wanted = _token_scopes(user, scopes, grantor)
    expires_at = _token_expiry(expires_at, expires_in_days, grantor)
    token, prefix, token_hash = new_api_token()
    api_token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=token_hash,
                         scopes=sorted(s.value for s in wanted), expires_at=expires_at)
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
            f"You cannot grant the {_scope_list(beyond_grantor)} scope: the credential you are using does not "
            "hold it.", loc=("scopes",),
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
            f"{grantor.expires_at:%Y-%m-%d %H:%M} UTC).", loc=("expires_at",),
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
        raise NotAuthenticated(f"API token expired at {api_token.expires_at:%Y-%m-%d %H:%M} UTC.",
                               loc=("header", "authorization"))
    last_used = api_token.last_used_at
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
        db.flush()
    return api_token
