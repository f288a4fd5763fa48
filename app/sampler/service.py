"""The sampler's database side: how full the pool is, which prompts need pairs next, storing new pairs,
and retiring pairs of a superseded version. No torch here; generation lives in trainer.generate and
the loop that joins the two in app.sampler.worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, aliased

from app.admin.models import SiteSetting
from app.comparisons.models import Comparison, ComparisonStatus, Completion
from app.policies import service as policy_service
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt

# The sampler may run in another process (or machine): it reports what it serves through this row.
STATUS_KEY = "sampler_status"


@dataclass(frozen=True)
class NewCompletion:
    policy_version_id: int
    text: str
    token_count: int
    finish_reason: str
    sampling: dict


def pool_size(*, db: Session) -> int:
    """Ready comparisons: pairs waiting for (more) judgments."""
    return (
        db.scalar(select(func.count()).select_from(Comparison).where(Comparison.status == ComparisonStatus.ready)) or 0
    )


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


def next_seed(*, db: Session, base_seed: int) -> int:
    """A batch seed that is reproducible from the database yet new for every batch, across restarts."""
    stored = db.scalar(select(func.max(Completion.id))) or 0
    return base_seed * 1_000_003 + stored


def overlap_target(*, rng: random.Random, target: int, share: float) -> int:
    """Annotators for a new pair: `target`, raised to at least 2 for a `share` of pairs (agreement)."""
    return max(target, 2) if rng.random() < share else target


def store_comparison(*, db: Session, prompt_id: int, a: NewCompletion, b: NewCompletion, overlap: int) -> Comparison:
    """Two completions of one prompt and the ready comparison between them."""
    # Byte-level tokenizers can emit a NUL byte, which PostgreSQL text cannot hold: show it as U+FFFD.
    completions = [
        Completion(
            prompt_id=prompt_id,
            policy_version_id=c.policy_version_id,
            text=c.text.replace("\x00", "\ufffd"),
            token_count=c.token_count,
            finish_reason=c.finish_reason,
            sampling=c.sampling,
        )
        for c in (a, b)
    ]
    db.add_all(completions)
    db.flush()
    comparison = Comparison(
        prompt_id=prompt_id,
        completion_a_id=completions[0].id,
        completion_b_id=completions[1].id,
        status=ComparisonStatus.ready,
        overlap_target=overlap,
    )
    db.add(comparison)
    db.flush()
    return comparison


def retire_superseded(*, db: Session, active_version_id: int, mode: str) -> int:
    """Retire ready pairs in which the active version has no completion; returns how many.

    mode "unjudged" retires only pairs nobody has judged yet (partly judged ones still reach their
    overlap), "all" every such pair, "none" nothing. Retired pairs are kept, with their judgments.
    """
    if mode == "none":
        return 0
    if mode not in ("unjudged", "all"):
        raise ValueError(f"retire mode must be none, unjudged or all, not {mode!r}")
    a, b = aliased(Completion), aliased(Completion)
    superseded = (
        select(Comparison.id)
        .join(a, a.id == Comparison.completion_a_id)
        .join(b, b.id == Comparison.completion_b_id)
        .where(
            Comparison.status == ComparisonStatus.ready,
            a.policy_version_id != active_version_id,
            b.policy_version_id != active_version_id,
        )
    )
    if mode == "unjudged":
        superseded = superseded.where(Comparison.judgment_count == 0)
    result = db.execute(
        update(Comparison).where(Comparison.id.in_(superseded)).values(status=ComparisonStatus.retired),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount


def retire_for_prompt(*, db: Session, prompt_id: int) -> int:
    """Retire every ready pair of a prompt (it was deactivated); returns how many."""
    result = db.execute(
        update(Comparison)
        .where(Comparison.prompt_id == prompt_id, Comparison.status == ComparisonStatus.ready)
        .values(status=ComparisonStatus.retired),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount


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
