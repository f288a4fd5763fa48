"""Shapes shared by the domains that work on comparisons: a pair's id in a request, a completion to store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from app.api.deps import MAX_DB_ID

# Ids are 32-bit integers in the database; anything outside that range cannot name a pair.
ComparisonId = Annotated[int, Field(ge=1, le=MAX_DB_ID, description="The pair's id.")]


@dataclass(frozen=True)
class NewCompletion:
    """A completion a policy version generated, to be stored as one side of a new comparison."""

    policy_version_id: int
    text: str
    token_count: int
    finish_reason: str
    sampling: dict
