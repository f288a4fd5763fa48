"""Signed-in browsers: the only module that reads or writes user_sessions.

The signed cookie carries a random session id (plus the CSRF token); the row it names says who is
signed in. Signing out deletes the row, so a copy of the cookie taken earlier stops working. A
session counts only while its user is active and its version equals users.session_version, which
deactivation, reactivation and password changes move on.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.auth.models import User, UserSession
from app.core.db import utcnow

# Where the session id sits in the (signed, not encrypted) cookie.
COOKIE_KEY = "sid"


def _hash(session_id: str) -> str:
    # 256 random bits: a fast hash is enough, as for API tokens.
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_(*, db: Session, user: User, max_age_s: int) -> str:
    """Sign user in: a new session whose id (returned for the cookie) is stored only hashed."""
    now = utcnow()
    # The user's expired sessions go now; nothing else would ever delete them.
    db.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    db.add(
        UserSession(
            id_hash=_hash(session_id),
            user_id=user.id,
            version=user.session_version,
            expires_at=now + timedelta(seconds=max_age_s),
        )
    )
    user.last_login_at = now
    db.flush()
    return session_id


def user_for(*, db: Session, session_id: str) -> User | None:
    """The active user a session id belongs to, or None if it was ended, expired or outdated."""
    row = db.get(UserSession, _hash(session_id))
    if row is None or row.expires_at <= utcnow():
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.is_active or row.version != user.session_version:
        return None
    return user


def end(*, db: Session, session_id: str) -> None:
    """Sign one browser out."""
    db.execute(delete(UserSession).where(UserSession.id_hash == _hash(session_id)))


def end_all(*, db: Session, user: User, keep: str | None = None) -> None:
    """Sign user out of every browser but the session `keep`: their session version moves on, so a
    session opened concurrently under the old version is refused too."""
    user.session_version += 1
    others = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        others = others.where(UserSession.id_hash != _hash(keep))
        db.execute(
            update(UserSession)
            .where(UserSession.id_hash == _hash(keep), UserSession.user_id == user.id)
            .values(version=user.session_version)
        )
    db.execute(others)
    db.flush()
