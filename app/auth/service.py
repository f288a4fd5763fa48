"""Users, logins and API tokens: the only module that reads or writes those tables."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, Role, User
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.security import hash_password, hash_token, new_api_token, token_prefix, verify_password

# Token use is recorded at most this often, so a busy client does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


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


def create_token(*, db: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token for user; the full token is returned once and only its hash is kept."""
    token, prefix, token_hash = new_api_token()
    api_token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=token_hash)
    db.add(api_token)
    db.flush()
    return api_token, token


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


def user_for_token(*, db: Session, token: str) -> User | None:
    """The active user a presented token belongs to, or None if it is unknown or revoked."""
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
    user = api_token.user
    if not user.is_active:
        return None
    now = utcnow()
    last_used = api_token.last_used_at
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
        db.flush()
    return user
