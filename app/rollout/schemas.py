"""What the API and the console show of a rollout: its state, its evidence and its verdict."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.rollout.models import RolloutStatus


class RolloutRead(BaseModel):
    id: int
    status: RolloutStatus = Field(description="running, or how it ended: activated | rejected | inconclusive | ended.")
    reason: str = Field(description="The verdict with its evidence, or why the rollout ended otherwise.")
    candidate_id: int
    candidate_number: int = Field(description="The version people judge against its parent.")
    parent_id: int
    parent_number: int
    share: float = Field(description="Share of new annotation pairs that compare the candidate with its parent.")
    confidence: float = Field(description="Level of the rating difference's interval that decides.")
    max_battles: int = Field(description="Rollout judgments after which an undecided rollout ends inconclusive.")
    deadline: datetime = Field(description="When an undecided rollout ends inconclusive.")
    battles: int = Field(description="Rollout judgments so far: candidate-vs-parent pairs judged since the start.")
    wins: int = Field(description="Of them, won by the candidate.")
    losses: int
    ties: int = Field(description="Ties and both-bad, each half a win for both sides.")
    rating_diff: float | None = Field(description="Candidate's Bradley-Terry rating minus the parent's (Elo).")
    rating_diff_low: float | None
    rating_diff_high: float | None
    created_at: datetime = Field(description="When the rollout started.")
    ended_at: datetime | None
    ended_by: str | None = Field(None, description="The admin who ended it, when one did.")
