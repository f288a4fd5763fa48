"""Request and response shapes for users and API tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role
from app.core.text import Text

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"


class UserCreate(BaseModel):
    username: Text = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    password: Text = Field(min_length=1, max_length=1024)
    role: Role = Role.annotator


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


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The full token. It is shown only once; store it now.")
