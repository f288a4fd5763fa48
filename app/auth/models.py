"""Accounts and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, CreatedAtMixin


class Role(enum.StrEnum):
    admin = "admin"
    annotator = "annotator"


class Scope(enum.StrEnum):
    """What an API token may do. A scope never grants more than its owner's role allows."""

    annotate = "annotate"  # the queue and submitting judgments
    export = "export"  # reading preference data out: the judgment list and exports
    admin = "admin"  # everything else an admin does through the API


# Annotators get no export scope: preference data is readable by admins only, so it would grant nothing.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.admin: frozenset(Scope),
    Role.annotator: frozenset({Scope.annotate}),
}


class User(CreatedAtMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    is_active: Mapped[bool] = mapped_column(default=True)
    # An admin can keep a user's judgments out of training without deleting them.
    excluded_from_training: Mapped[bool] = mapped_column(default=False)
    # Bumped by deactivation, reactivation and password changes: a browser session minted under an
    # older version is refused, so a cookie saved before any of those never comes back to life.
    session_version: Mapped[int] = mapped_column(default=0)
    last_login_at: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    @property
    def role_scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self.role]


class UserSession(CreatedAtMixin, Base):
    """A signed-in browser. The cookie carries a random id; deleting the row signs that browser out."""

    __tablename__ = "user_sessions"

    # sha256 of the id in the cookie, so a copy of this table hands out no live sessions.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The user's session_version when this session was opened; valid only while the two agree.
    version: Mapped[int]
    expires_at: Mapped[datetime]


class LoginThrottle(Base):
    """Recent failed sign-ins (or bad API tokens) under one key, e.g. one client address and username."""

    __tablename__ = "login_throttle"

    # sha256 of the key, which holds the typed username: people type passwords into that field.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]


class ApiToken(CreatedAtMixin, Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The public part shown in listings; the secret part is only ever stored hashed.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Scope values as stored (a JSON list of strings, sorted); read them through `granted`.
    scopes: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def granted(self) -> frozenset[Scope]:
        """The scopes this token carries that its owner's role still allows."""
        return frozenset(Scope(s) for s in self.scopes if s in Scope.__members__) & self.user.role_scopes

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
