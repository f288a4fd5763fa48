"""Response shapes for policy versions and reward models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.policies.models import PolicyStatus


class PolicyVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int
    status: PolicyStatus
    parent_id: int | None
    parent_number: int | None = Field(None, description="The version this one was trained from.")
    round_id: int | None = Field(None, description="The training round that produced it; None for a base.")
    source: str = Field(description="Hub id or local path of a registered base, or the producing round.")
    path: str
    metrics: dict
    created_at: datetime
    activated_at: datetime | None


class RewardModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int
    path: str
    metrics: dict
    score_mean: float
    score_std: float
    created_at: datetime
