"""Shapes of the numbers the console shows and /api/v1/stats returns: the same objects for both.

Rates and statistics are None where they are not defined (nothing to divide, no overlap, no
variation); the console shows None as "—".
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class HourCount(BaseModel):
    start: datetime = Field(description="Start of the hour (UTC).")
    judgments: int


class ActivePolicy(BaseModel):
    id: int
    number: int
    activated_at: datetime | None


class RoundProgress(BaseModel):
    id: int
    status: str
    stage: str
    completed_stages: list[str]
    step: int
    total_steps: int
    fraction: float | None = Field(description="step / total_steps of the current stage.")
    started_at: datetime | None


class Progress(BaseModel):
    """Where the loop stands: data, annotation pace, the active policy and the round in flight."""

    prompts_total: int
    prompts_active: int
    comparisons_ready: int
    comparisons_completed: int
    comparisons_retired: int
    comparisons_gold: int
    judgments_total: int
    judgments_today: int = Field(description="Since 00:00 UTC.")
    judgments_last_hour: int
    judgments_per_hour: list[HourCount] = Field(description="The last 24 clock hours, oldest first.")
    annotators_active: int = Field(description="Distinct annotators with a judgment in the last 24 hours.")
    active_policy: ActivePolicy | None
    current_round: RoundProgress | None = Field(description="The queued or running round, if any.")
    generated_at: datetime


class PositionBiasRead(BaseModel):
    """Share of side-picking judgments (ties and both-bad excluded) that chose the left side."""

    left: int
    decided: int
    share: float | None
    ci_low: float | None = Field(description="95% Wilson interval.")
    ci_high: float | None
    p_value: float | None = Field(description="Two-sided exact binomial test against 1/2.")
    significant: bool


class AnnotatorStats(BaseModel):
    user_id: int
    username: str
    role: str
    is_active: bool
    excluded_from_training: bool
    judgments: int
    judgments_today: int
    skips: int
    skip_rate: float | None = Field(description="skips / (judgments + skips).")
    tie_rate: float | None
    both_bad_rate: float | None
    median_time_ms: float | None
    position_bias: PositionBiasRead
    gold_judged: int
    gold_correct: int
    gold_accuracy: float | None
    overlap_pairs: int = Field(description="(own label, other's label) pairs on shared comparisons.")
    agreement_rate: float | None = Field(description="Share of those pairs that agree.")
    kappa_vs_others: float | None = Field(description="Cohen's kappa over those pairs.")
    last_judgment_at: datetime | None


class UserRef(BaseModel):
    id: int
    username: str


class PairAgreement(BaseModel):
    annotator_a: UserRef
    annotator_b: UserRef
    shared: int
    agreed: int
    agreement_rate: float
    kappa: float | None


class Agreement(BaseModel):
    """Inter-annotator agreement over comparisons judged by two or more annotators."""

    alpha: float | None = Field(description="Krippendorff's alpha, nominal over a / b / tie / both_bad.")
    alpha_reading: str = Field(
        description="reliable (>= 0.8), tentative (>= 0.667), unreliable or undefined (no data)."
    )
    units: int = Field(description="Comparisons with two or more judgments.")
    judgments: int = Field(description="Judgments on those comparisons.")
    pairs: list[PairAgreement] = Field(description="Cohen's kappa per annotator pair, most shared first.")
