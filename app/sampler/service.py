"""The sampler's database side: how full the pool is, which prompts need pairs next, which version to
pit the active one against, and the status the running sampler reports. The pairs themselves are
created and retired by app.comparisons.service. No torch here; generation lives in trainer.generate and
the loop that joins the two in app.sampler.worker.
"""

from __future__ import annotations

import random
from datetime import datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from app.admin.models import SiteSetting
from app.comparisons.models import Comparison, ComparisonStatus, Completion
from app.policies import service as policy_service
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt
from app.rollout import service as rollout_service

# The sampler may run in another process (or machine): it reports what it serves through this row.
STATUS_KEY = "sampler_status"


def pool_size(*, db: Session, version_id: int | None = None) -> int:
    """Ready comparisons: pairs waiting for (more) judgments; with version_id, only those in which that
    policy version has a completion."""
    query = select(func.count()).select_from(Comparison).where(Comparison.status == ComparisonStatus.ready)
    if version_id is not None:
        of_version = select(Completion.id).where(Completion.policy_version_id == version_id)
        query = query.where(or_(Comparison.completion_a_id.in_(of_version), Comparison.completion_b_id.in_(of_version)))
    return db.scalar(query) or 0


def prompts_by_need(*, db: Session, limit: int, exclude_ids: set[int] | frozenset[int] = frozenset()) -> list[Prompt]:
    """Active prompts that need a new pair most: fewest judgments first, then fewest ready pairs, then
    the oldest. Judgments are counted through Comparison.judgment_count, retired pairs included."""
    per_prompt = (
        select(
            Comparison.prompt_id.label("prompt_id"),
            func.sum(Comparison.judgment_count).label("judgments"),
            func.sum(case((Comparison.status == ComparisonStatus.ready, 1), else_=0)).label("ready"),
        )
        .group_by(Comparison.prompt_id)
        .subquery()
    )
    query = (
        select(Prompt)
        .outerjoin(per_prompt, per_prompt.c.prompt_id == Prompt.id)
        .where(Prompt.is_active.is_(True))
        .order_by(func.coalesce(per_prompt.c.judgments, 0), func.coalesce(per_prompt.c.ready, 0), Prompt.id)
        .limit(limit)
    )
    if exclude_ids:
        query = query.where(Prompt.id.not_in(sorted(exclude_ids)))
    return list(db.scalars(query))


def baseline_version(*, db: Session, active: PolicyVersion, number: int = 0) -> PolicyVersion | None:
    """The earlier version cross-version pairs pit `active` against: version `number` when given,
    else the active version's previous one. None when there is none (or it is the active one)."""
    if number:
        baseline = policy_service.get_by_number(db=db, number=number)
    else:
        baseline = policy_service.previous_version(db=db, version=active)
    return baseline if baseline is not None and baseline.id != active.id else None


def rollout_partner(*, db: Session, active: PolicyVersion) -> tuple[PolicyVersion | None, float]:
    """(the running rollout's candidate, the share of new pairs it gets) when `active` is its parent;
    (None, 0.0) otherwise."""
    rollout = rollout_service.running(db=db)
    if rollout is None or rollout.parent_id != active.id:
        return None, 0.0
    return policy_service.get_or_raise(db=db, version_id=rollout.candidate_id), rollout.share


def next_seed(*, db: Session, base_seed: int) -> int:
    """A batch seed that is reproducible from the database yet new for every batch, across restarts."""
    stored = db.scalar(select(func.max(Completion.id))) or 0
    return base_seed * 1_000_003 + stored


def overlap_target(*, rng: random.Random, target: int, share: float) -> int:
    """Annotators for a new pair: `target`, raised to at least 2 for a `share` of pairs (agreement)."""
    return max(target, 2) if rng.random() < share else target


def save_status(*, db: Session, status: dict) -> None:
    """What the running sampler serves and its last error, for the admin API and console."""
    row = db.get(SiteSetting, STATUS_KEY)
    if row is None:
        db.add(SiteSetting(key=STATUS_KEY, value=status))
    else:
        row.value = status
    db.flush()


def load_status(*, db: Session) -> tuple[dict, datetime] | None:
    """The last status a sampler saved and when; None when no sampler has run yet."""
    row = db.get(SiteSetting, STATUS_KEY)
    return (row.value, row.updated_at) if row is not None else None
