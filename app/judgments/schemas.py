"""Request and response shapes of judgments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.comparisons.models import Choice
from app.comparisons.schemas import ComparisonId
from app.core.text import Text
from app.judgments.models import Judgment, ScreenChoice, Strength

StrengthName = Literal["slightly", "clearly", "much"]


class JudgmentCreate(BaseModel):
    """Your verdict on a pair reserved for you, in screen terms."""

    comparison_id: ComparisonId
    choice: ScreenChoice = Field(description="left (A is better), right (B is better), tie or both_bad.")
    strength: StrengthName | None = Field(None, description="How much better the chosen side is.")
    rationale: Text = Field("", description="Why, in a few words (optional; the server limits its length).")
    client_request_id: Text | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Idempotency key: a retry with the same id returns the first judgment, storing nothing.",
    )
    time_spent_ms: int | None = Field(
        None, ge=0, le=7 * 24 * 3600 * 1000, description="Your own measure of the time spent on this pair."
    )


class JudgmentRead(BaseModel):
    id: int
    comparison_id: int
    choice: Choice = Field(description="In terms of the pair's completions a/b (left/right mapped).")
    strength: StrengthName | None
    shown_left: str = Field(description="Which completion (a or b) was shown on the left.")
    rationale: str
    time_spent_ms: int | None = Field(description="Measured by the server from the showing to the submit.")
    client_time_spent_ms: int | None
    client_request_id: str | None
    channel: str
    created_at: datetime

    @classmethod
    def from_judgment(cls, judgment: Judgment) -> JudgmentRead:
        strength = Strength(judgment.strength).name if judgment.strength is not None else None
        return cls(
            id=judgment.id,
            comparison_id=judgment.comparison_id,
            choice=judgment.choice,
            strength=strength,
            shown_left=judgment.shown_left,
            rationale=judgment.rationale,
            time_spent_ms=judgment.time_spent_ms,
            client_time_spent_ms=judgment.client_time_spent_ms,
            client_request_id=judgment.client_request_id,
            channel=judgment.channel,
            created_at=judgment.created_at,
        )
