"""A human-gated rollout's lifecycle: start, evaluate as judgments arrive, end (by its rule, an admin, or
because the versions it compares changed), and activation that knows about it.

At most one rollout runs (the database refuses a second). While it runs, the sampler gives a `share` of
new pairs one answer from the candidate and one from the active version, its parent (app/sampler/). The
rule (app/rollout/rule.py) is applied as each judgment of such a pair is stored (`evaluate_after_judgment`,
called by the judgments service in the judgment's transaction), and again on every pass of the sampler's
loop (`evaluate_running`), which also ends a rollout at its deadline when no judgment comes.
Every decision is taken with the rollout's row locked, and activation goes through the policies service,
whose partial unique index keeps exactly one version active; so a rollout that decides while an admin
activates something else ends one way, with its reason, and never leaves two versions active. Every end
is announced to webhooks (`rollout.finished`) in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from app.auth.models import User
from app.comparisons.models import Completion
from app.core.config import Settings
from app.core.errors import DomainError, InvalidState, NotFound
from app.policies import service as policy_service
from app.policies.models import PolicyStatus, PolicyVersion
from app.ratings import service as ratings_service
from app.rollout import rule
from app.rollout.models import Rollout, RolloutStatus
from app.rollout.schemas import RolloutRead
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookEvent

log = logging.getLogger("prefloop.rollout")


def get(*, db: Session, rollout_id: int) -> Rollout | None:
    return db.get(Rollout, rollout_id)


def get_or_raise(*, db: Session, rollout_id: int, lock: bool = False) -> Rollout:
    """The rollout (404 otherwise). lock: hold its row until the transaction ends."""
    rollout = db.get(Rollout, rollout_id, with_for_update=lock, populate_existing=lock)
    if rollout is None:
        raise NotFound(f"Rollout {rollout_id} does not exist.", loc=("path", "rollout_id"))
    return rollout


def running(*, db: Session, lock: bool = False) -> Rollout | None:
    """The running rollout, if any; lock: its row is held until the transaction ends."""
    query = select(Rollout).where(Rollout.status == RolloutStatus.running)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.scalar(query)


def list_(*, db: Session) -> list[Rollout]:
    """Every rollout, newest first."""
    return list(db.scalars(select(Rollout).order_by(Rollout.id.desc())))


def latest_for(*, db: Session, version_ids: list[int]) -> dict[int, Rollout]:
    """Per candidate version id, its most recent rollout (versions without one are left out)."""
    rows = db.scalars(select(Rollout).where(Rollout.candidate_id.in_(version_ids)).order_by(Rollout.id))
    return {row.candidate_id: row for row in rows}


def to_read(*, db: Session, rollout: Rollout) -> RolloutRead:
    """The rollout as the API and the console show it, with version numbers and who ended it."""
    candidate = policy_service.get_or_raise(db=db, version_id=rollout.candidate_id)
    parent = policy_service.get_or_raise(db=db, version_id=rollout.parent_id)
    ended_by = db.get(User, rollout.ended_by_id) if rollout.ended_by_id else None
    columns = {name: getattr(rollout, name) for name in RolloutRead.model_fields if hasattr(rollout, name)}
    return RolloutRead(
        **columns,
        candidate_number=candidate.number,
        parent_number=parent.number,
        ended_by=ended_by.username if ended_by else None,
    )


def _end(
    db: Session, rollout: Rollout, status: RolloutStatus, reason: str, now: datetime, by: User | None = None
) -> None:
    """End the rollout with its verdict and reason, and announce it (webhook event rollout.finished)."""
    rollout.status, rollout.reason, rollout.ended_at = status, reason, now
    rollout.ended_by_id = by.id if by is not None else None
    candidate = policy_service.get_or_raise(db=db, version_id=rollout.candidate_id)
    parent = policy_service.get_or_raise(db=db, version_id=rollout.parent_id)
    webhook_service.emit(
        db=db,
        event=WebhookEvent.rollout_finished,
        payload={
            "rollout_id": rollout.id,
            "status": status.value,
            "reason": reason,
            "candidate_number": candidate.number,
            "parent_number": parent.number,
            "battles": rollout.battles,
            "wins": rollout.wins,
            "losses": rollout.losses,
            "ties": rollout.ties,
            "rating_diff": rollout.rating_diff,
            "rating_diff_low": rollout.rating_diff_low,
            "rating_diff_high": rollout.rating_diff_high,
            "confidence": rollout.confidence,
            "ended_by": by.username if by is not None else None,
        },
    )


def start(
    *, db: Session, settings: Settings, candidate: PolicyVersion, share: float, now: datetime
) -> tuple[Rollout | None, str]:
    """Start comparing `candidate` with its parent; (the rollout, "") or (None, why it could not start).

    The parent must be the active version, since rollout pairs pit the candidate against what is served.
    A rollout already running is ended: its candidate stays a candidate."""
    parent = policy_service.get(db=db, version_id=candidate.parent_id) if candidate.parent_id else None
    if parent is None or parent.status is not PolicyStatus.active:
        shown = f"v{parent.number}" if parent is not None else "none"
        return None, f"No rollout: its parent ({shown}) is not the active version, and a rollout compares with it."
    if (previous := running(db=db, lock=True)) is not None:
        _end(db, previous, RolloutStatus.ended, f"Ended: the rollout of v{candidate.number} replaced it.", now)
        db.flush()  # the running one ends before the new one starts: one running row at any moment
    rollout = Rollout(
        candidate_id=candidate.id,
        parent_id=parent.id,
        share=share,
        confidence=settings.TRAINING_ROLLOUT_CONFIDENCE,
        max_battles=settings.TRAINING_ROLLOUT_MAX_BATTLES,
        deadline=now + timedelta(hours=settings.TRAINING_ROLLOUT_MAX_HOURS),
        created_at=now,
    )
    db.add(rollout)
    db.flush()
    return rollout, ""


def _overtaken(db: Session, rollout: Rollout) -> str:
    """Why the rollout can no longer decide anything (the versions it compares changed); "" when it can."""
    candidate = policy_service.get_or_raise(db=db, version_id=rollout.candidate_id)
    parent = policy_service.get_or_raise(db=db, version_id=rollout.parent_id)
    active = policy_service.get_active(db=db)
    if candidate.status is PolicyStatus.active:
        return f"Decided by admin: v{candidate.number} was activated by hand."
    if candidate.status is not PolicyStatus.candidate:
        return f"Ended: v{candidate.number} is no longer a candidate ({candidate.status.value})."
    if active is None or active.id != parent.id:
        shown = f"v{active.number}" if active is not None else "no version"
        return f"Decided by admin: {shown} was activated (rolled back or forward) while v{parent.number} was compared."
    return ""


def evaluate(*, db: Session, rollout_id: int, now: datetime) -> Rollout:
    """Bring a running rollout up to date with its battles and end it when its rule, or a change of the
    versions it compares, says so. A rollout that is not running is returned as it is."""
    rollout = get_or_raise(db=db, rollout_id=rollout_id, lock=True)
    if rollout.status is not RolloutStatus.running:
        return rollout
    if reason := _overtaken(db, rollout):
        _end(db, rollout, RolloutStatus.ended, reason, now)
        return rollout
    found = rule.evidence(
        ratings_service.battles(db=db, between=(rollout.candidate_id, rollout.parent_id), since=rollout.created_at),
        candidate=rollout.candidate_id,
        parent=rollout.parent_id,
        confidence=rollout.confidence,
    )
    rollout.battles, rollout.wins, rollout.losses, rollout.ties = found.battles, found.wins, found.losses, found.ties
    rollout.rating_diff, rollout.rating_diff_low = found.rating_diff, found.rating_diff_low
    rollout.rating_diff_high = found.rating_diff_high
    decided = rule.verdict(
        found,
        confidence=rollout.confidence,
        max_battles=rollout.max_battles,
        past_deadline=now >= rollout.deadline,
    )
    if decided is None:
        return rollout
    status, reason = decided
    if status is RolloutStatus.activated:
        try:
            policy_service.activate(db=db, version_id=rollout.candidate_id)
        except InvalidState as exc:  # its files are gone or broken: people's verdict cannot be served
            _end(db, rollout, RolloutStatus.ended, f"{reason} But it cannot be activated: {exc.msg}", now)
            return rollout
        # A Conflict (another version activated at this moment) propagates: the transaction rolls back and
        # the next pass finds the rollout overtaken.
    _end(db, rollout, status, reason, now)
    return rollout


def evaluate_running(*, db: Session, now: datetime) -> Rollout | None:
    """Evaluate the running rollout, if any (the sampler's loop calls this on every pass)."""
    current = running(db=db)
    return evaluate(db=db, rollout_id=current.id, now=now) if current is not None else None


# The running rollout whose battle a pair of these two completions is (one answer from its candidate, one
# from its parent, either way round). Built once: it runs on every judgment stored.
_completion_a, _completion_b = aliased(Completion), aliased(Completion)
_RUNNING_FOR_PAIR = (
    select(Rollout.id)
    .join(_completion_a, _completion_a.id == bindparam("completion_a_id"))
    .join(_completion_b, _completion_b.id == bindparam("completion_b_id"))
    .where(
        Rollout.status == RolloutStatus.running,
        or_(
            and_(
                _completion_a.policy_version_id == Rollout.candidate_id,
                _completion_b.policy_version_id == Rollout.parent_id,
            ),
            and_(
                _completion_a.policy_version_id == Rollout.parent_id,
                _completion_b.policy_version_id == Rollout.candidate_id,
            ),
        ),
    )
)


def evaluate_after_judgment(
    *, db: Session, completion_a_id: int, completion_b_id: int, now: datetime
) -> Rollout | None:
    """When the pair just judged (these two completions) is a battle of the running rollout, apply its rule
    now, in the judgment's transaction; the rollout, or None when the pair is no rollout battle.

    The judgment never waits on the decision: one that cannot be taken now (another version activated at
    this moment, say) is rolled back alone, logged, and left to the sampler's next pass."""
    rollout_id = db.scalar(_RUNNING_FOR_PAIR, {"completion_a_id": completion_a_id, "completion_b_id": completion_b_id})
    if rollout_id is None:
        return None
    try:
        with db.begin_nested():
            return evaluate(db=db, rollout_id=rollout_id, now=now)
    except DomainError as exc:
        log.info("rollout %d: decision left to the sampler's next pass: %s", rollout_id, exc.msg)
        return None


def stop(*, db: Session, rollout_id: int, admin: User, now: datetime) -> Rollout:
    """End a running rollout by hand; its candidate stays a candidate. A rollout that already ended
    (perhaps a moment ago, by its rule or another admin) is refused with how it ended."""
    rollout = get_or_raise(db=db, rollout_id=rollout_id, lock=True)
    if rollout.status is not RolloutStatus.running:
        raise InvalidState(f"Rollout {rollout.id} already ended ({rollout.status.value}): {rollout.reason}")
    evaluate(db=db, rollout_id=rollout_id, now=now)  # the evidence as of now, kept with the verdict
    if rollout.status is RolloutStatus.running:
        shown = rule.describe(_evidence_of(rollout), rollout.confidence)
        _end(db, rollout, RolloutStatus.ended, f"Stopped by admin {admin.username}: {shown}.", now, by=admin)
        return rollout
    raise InvalidState(
        f"Rollout {rollout.id} ended before it could be stopped ({rollout.status.value}): {rollout.reason}"
    )


def _evidence_of(rollout: Rollout) -> rule.Evidence:
    return rule.Evidence(
        rollout.battles,
        rollout.wins,
        rollout.losses,
        rollout.ties,
        rollout.rating_diff,
        rollout.rating_diff_low,
        rollout.rating_diff_high,
    )


def activate(*, db: Session, version_id: int, admin: User | None, now: datetime) -> PolicyVersion:
    """An admin's activation (or rollback): the policies service activates, and a running rollout ends
    "decided by admin". The rollout's row is locked first, so its own decision cannot interleave."""
    current = running(db=db, lock=True)
    version = policy_service.activate(db=db, version_id=version_id)
    if current is not None:
        by = f"admin {admin.username}" if admin is not None else "an admin"
        if version.id == current.candidate_id:
            reason = f"Decided by admin: {by} activated v{version.number}, the candidate."
            _end(db, current, RolloutStatus.activated, reason, now, by=admin)
        elif version.id != current.parent_id:
            reason = f"Decided by admin: {by} activated v{version.number}; the candidate stays a candidate."
            _end(db, current, RolloutStatus.ended, reason, now, by=admin)
    return version
