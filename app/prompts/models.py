"""Prompts the sampler generates completions for."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin


class Prompt(CreatedAtMixin, Base):
    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Always chat messages ([{"role": "user", "content": ...}, ...]); plain text becomes one user turn.
    messages: Mapped[list]
    # The messages flattened, for search and display.
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list] = mapped_column(default=list)
    # sha256 of the normalized messages: importing the same prompt twice stores it once.
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
