"""Request and response shapes for users and API tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.auth.models import Role, Scope
from app.auth.service import MAX_TOKEN_DAYS
from app.core.text import Text

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"


class UserCreate(BaseModel):
    username: Text = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    password: Text = Field(min_length=1, max_length=1024)
    role: Role = Role.annotator


class UserUpdate(BaseModel):
    is_active: bool | None = None
    role: Role | None = None
    excluded_from_training: bool | None = None


class PasswordChange(BaseModel):
    current_password: Text = Field(min_length=1, max_length=1024)
    new_password: Text = Field(min_length=1, max_length=1024)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    is_active: bool
    excluded_from_training: bool
    created_at: datetime
    last_login_at: datetime | None


class TokenCreate(BaseModel):
    name: Text = Field("api", min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(
        None,
        min_length=1,
        max_length=len(Scope),
        description="Default: every scope the owner's role allows that your own credential holds.",
    )
    expires_in_days: int | None = Field(None, ge=1, le=MAX_TOKEN_DAYS, description="Default: no expiry.")
    expires_at: datetime | None = Field(None, description="Instead of expires_in_days; UTC if no zone is given.")

    @field_validator("expires_at")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_in_days is not None and self.expires_at is not None:
            raise ValueError("Give expires_in_days or expires_at, not both.")
        return self


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: list[Scope]
    expires_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The full token. It is shown only once; store it now.")
