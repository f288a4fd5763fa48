"""Request and response shapes of the annotation queue."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import Text
from app.queue.service import Pair


class MessageRead(BaseModel):
    """One chat turn of the prompt."""

    role: str
    content: str


class PairRead(BaseModel):
    """A pair to judge, blind: completions by screen side, never as a/b, never with policy versions."""

    comparison_id: int
    messages: list[MessageRead] = Field(description="The prompt, as chat messages.")
    left: str = Field(description="Text of the completion shown on the left (labelled A on the page).")
    right: str = Field(description="Text of the completion shown on the right (labelled B).")
    expires_at: datetime = Field(description="The pair is reserved for you until then.")

    @classmethod
    def from_pair(cls, pair: Pair) -> PairRead:
        return cls(
            comparison_id=pair.comparison_id,
            messages=pair.messages,
            left=pair.left_text,
            right=pair.right_text,
            expires_at=pair.expires_at,
        )


class SkipCreate(BaseModel):
    reason: Text = Field(min_length=1, max_length=500, description="Why you pass on this pair.")


class SkipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    comparison_id: int
    reason: str
    created_at: datetime
