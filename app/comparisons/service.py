"""A comparison's lifecycle: created ready by the sampler, judged until its overlap target completes it,
retired when its prompt is deactivated or its policy version superseded; gold or not, at an admin's word.

Who calls what: the sampler creates and retires (app/sampler/worker.py), deactivating a prompt retires
its pairs (app/prompts/service.py), storing a judgment counts it (app/judgments/service.py), and the
console marks gold. Which annotator sees a comparison, and when, is the queue's (app/queue/service.py).
"""

from __future__ import annotations

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, exists, func, select, update
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.comparisons.models import Choice, Comparison, ComparisonStatus, Completion
from app.comparisons.schemas import NewCompletion
from app.core.db import rowcount, table_of
from app.core.errors import NotFound, Unprocessable
from app.judgments.models import Judgment


def create(*, db: Session, prompt_id: int, a: NewCompletion, b: NewCompletion, overlap: int) -> Comparison:
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


def get(*, db: Session, comparison_id: int) -> Comparison | None:
    """The comparison, or None."""
    return db.get(Comparison, comparison_id)


def get_or_raise(*, db: Session, comparison_id: int) -> Comparison:
    """The comparison, or NotFound."""
    comparison = get(db=db, comparison_id=comparison_id)
    if comparison is None:
        raise NotFound(f"Comparison {comparison_id} does not exist.", loc=("comparison_id",))
    return comparison


# Built once: the annotation path runs these on every request (see app/queue/service.py).
_FOR_UPDATE = (
    select(Comparison)
    .where(Comparison.id == bindparam("comparison_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_COMPARISONS = table_of(Comparison)
_COUNT = (
    update(_COMPARISONS)
    .where(_COMPARISONS.c.id == bindparam("comparison_id"))
    .values(judgment_count=bindparam("new_count"), status=bindparam("new_status"))
)


def get_for_update_or_raise(
    *, db: Session, comparison_id: int, loc: tuple[str, ...] = ("body", "comparison_id")
) -> Comparison:
    """The comparison, row-locked (PostgreSQL) so locks and judgments on it change one at a time; for the
    annotation API, whose NotFound speaks of a pair and names where the request gave its id (loc)."""
    comparison = db.scalars(_FOR_UPDATE, {"comparison_id": comparison_id}).first()
    if comparison is None:
        raise NotFound(f"Pair {comparison_id} does not exist.", loc=loc)
    return comparison


def count_judgment(*, db: Session, comparison: Comparison) -> bool:
    """One more judgment of a comparison held by get_for_update_or_raise: it completes once it has as many
    as its overlap target. Returns whether it did; the comparison object shows the new count and status."""
    count = comparison.judgment_count + 1
    status = ComparisonStatus.completed if count >= comparison.overlap_target else comparison.status
    # Written through the table, not the ORM unit of work: a plain statement costs a fraction of a flush.
    db.execute(_COUNT, {"comparison_id": comparison.id, "new_count": count, "new_status": status})
    set_committed_value(comparison, "judgment_count", count)
    set_committed_value(comparison, "status", status)
    return status == ComparisonStatus.completed


def judged_by(annotator_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """SQL condition: the comparison of the enclosing query has a judgment by the annotator (the queue
    offers no pair to someone who judged it)."""
    return exists().where(Judgment.comparison_id == Comparison.id, Judgment.annotator_id == annotator_id)


def count_ready_for_prompt(*, db: Session, prompt_id: int) -> int:
    """Ready pairs of a prompt: what retire_for_prompt would retire."""
    ready = (Comparison.prompt_id == prompt_id, Comparison.status == ComparisonStatus.ready)
    return db.scalar(select(func.count()).select_from(Comparison).where(*ready)) or 0


def retire_for_prompt(*, db: Session, prompt_id: int) -> int:
    """Retire every ready pair of a prompt (it was deactivated); returns how many."""
    result = db.execute(
        update(Comparison)
        .where(Comparison.prompt_id == prompt_id, Comparison.status == ComparisonStatus.ready)
        .values(status=ComparisonStatus.retired),
        execution_options={"synchronize_session": False},
    )
    return rowcount(result)


def _superseded(active_version_id: int, mode: str) -> Select[int]:
    """Ids of the ready pairs retire_superseded retires (see there)."""
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
    return superseded


def retire_superseded(*, db: Session, active_version_id: int, mode: str) -> int:
    """Retire ready pairs in which the active version has no completion; returns how many.

    mode "unjudged" retires only pairs nobody has judged yet (partly judged ones still reach their
    overlap), "all" every such pair, "none" nothing. Retired pairs are kept, with their judgments.
    The sampler calls it once the new version's pool is full, so the queue never runs dry meanwhile.
    """
    if mode == "none":
        return 0
    result = db.execute(
        update(Comparison)
        .where(Comparison.id.in_(_superseded(active_version_id, mode)))
        .values(status=ComparisonStatus.retired),
        execution_options={"synchronize_session": False},
    )
    return rowcount(result)


def count_superseded(*, db: Session, active_version_id: int, mode: str) -> int:
    """How many ready pairs retire_superseded would retire if `active_version_id` were active (what an
    admin is told before activating it)."""
    if mode == "none":
        return 0
    return db.scalar(select(func.count()).select_from(_superseded(active_version_id, mode).subquery())) or 0


# --- gold ------------------------------------------------------------------------------------------
# A gold comparison has a known right answer; annotators' accuracy on gold measures their quality.


def set_gold(*, db: Session, comparison_id: int, choice: str) -> Comparison:
    """Mark a comparison as gold with its expected answer (a | b | tie | both_bad, in completion terms)."""
    if choice not in Choice.__members__:
        raise Unprocessable(
            f"Expected answer must be one of {', '.join(Choice.__members__)} (got {choice!r}).",
            loc=("choice",),
        )
    comparison = get_or_raise(db=db, comparison_id=comparison_id)
    comparison.is_gold = True
    comparison.gold_choice = Choice(choice)
    db.flush()
    return comparison


def clear_gold(*, db: Session, comparison_id: int) -> Comparison:
    """Make a gold comparison an ordinary one again; its judgments stay as they are."""
    comparison = get_or_raise(db=db, comparison_id=comparison_id)
    comparison.is_gold = False
    comparison.gold_choice = None
    db.flush()
    return comparison


def list_gold(*, db: Session) -> list[Comparison]:
    """Every gold comparison, newest first, with its prompt and the versions that answered loaded."""
    return _newest(db=db, gold=True)


def list_recent(*, db: Session, limit: int) -> list[Comparison]:
    """The newest comparisons that are not gold yet: candidates an admin may mark."""
    return _newest(db=db, gold=False, limit=limit)


def _newest(*, db: Session, gold: bool, limit: int | None = None) -> list[Comparison]:
    query = (
        select(Comparison)
        .where(Comparison.is_gold.is_(gold))
        .options(
            selectinload(Comparison.prompt),
            selectinload(Comparison.completion_a).selectinload(Completion.policy_version),
            selectinload(Comparison.completion_b).selectinload(Completion.policy_version),
        )
        .order_by(Comparison.id.desc())
        .limit(limit)
    )
    return list(db.scalars(query))
