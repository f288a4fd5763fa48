"""What the admin API says about the sampler."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SamplerStatusRead(BaseModel):
    pool_size: int = Field(description="Ready comparisons now.")
    active_version: int | None = Field(description="The version the database says is active.")
    serving_version: int | None = Field(
        description="The version the sampler generates with; differs from active_version while a switch is "
        "pending or after the active version failed to load (see last_error)."
    )
    baseline_version: int | None = Field(description="The earlier version of cross-version pairs.")
    rollout_candidate: int | None = Field(
        None, description="The candidate a running human-gated rollout pits against the served version."
    )
    last_error: str
    low_water: int | None = Field(description="The pool size the sampler keeps.")
    host: str | None
    pid: int | None
    reported_at: datetime | None = Field(description="The sampler's last report (at least every 30 s).")
