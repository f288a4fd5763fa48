"""Version-vs-version battles from human judgments, and the leaderboard built on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.auth.models import User
from app.comparisons.models import Choice, Comparison, Completion
from app.judgments.models import Judgment
from app.policies.models import PolicyVersion
from app.ratings import bradley_terry as bt
from app.ratings.schemas import LeaderboardRowRead, ParentRecord, RecordRead

# Battles a version needs before the leaderboard ranks and plots it. Below this its rating is mostly the
# prior (a 95% interval several hundred points wide), so it is listed as "not enough comparisons".
MIN_BATTLES = 10

# From the point of view of completion a's version.
_OUTCOME = {Choice.a: 1.0, Choice.b: 0.0, Choice.tie: 0.5, Choice.both_bad: 0.5}


def battles(
    *, db: Session, between: tuple[int, int] | None = None, since: datetime | None = None
) -> list[bt.Battle[int]]:
    """(version a, version b, outcome) for every judgment of a pair from two different versions,
    by active annotators whose work is not excluded from training; only those of the two versions
    `between`, and only judgments stored from `since` on, when given (a rollout's battles)."""
    completion_a, completion_b = aliased(Completion), aliased(Completion)
    query = (
        select(completion_a.policy_version_id, completion_b.policy_version_id, Judgment.choice)
        .join(Comparison, Judgment.comparison_id == Comparison.id)
        .join(completion_a, Comparison.completion_a_id == completion_a.id)
        .join(completion_b, Comparison.completion_b_id == completion_b.id)
        .join(User, Judgment.annotator_id == User.id)
        .where(completion_a.policy_version_id != completion_b.policy_version_id)
        .where(User.is_active.is_(True), User.excluded_from_training.is_(False))
    )
    if between is not None:
        query = query.where(completion_a.policy_version_id.in_(between), completion_b.policy_version_id.in_(between))
    if since is not None:
        query = query.where(Judgment.created_at >= since)
    return [(a, b, _OUTCOME[Choice(choice)]) for a, b, choice in db.execute(query)]


def _record(all_battles: list[bt.Battle[int]], version: int, opponent: int | None) -> RecordRead | None:
    if opponent is None or opponent == version:
        return None
    h2h = bt.head_to_head(all_battles, version, opponent)
    return RecordRead(
        wins=h2h.wins,
        losses=h2h.losses,
        ties=h2h.ties,
        win_rate=h2h.win_rate,
        interval=bt.wilson_interval(h2h.wins, h2h.decided),
    )


def against_parent(*, db: Session, version_id: int) -> ParentRecord | None:
    """How people judged a version against the one it was trained from; None for a base version."""
    version = db.get(PolicyVersion, version_id)
    if version is None or version.parent_id is None:
        return None
    parent = db.get(PolicyVersion, version.parent_id)
    if parent is None:
        return None
    return ParentRecord(parent_number=parent.number, record=_record(battles(db=db), version.id, parent.id))


def leaderboard(*, db: Session) -> list[LeaderboardRowRead]:
    """Every version that has battled: those with enough battles best first, then the rest, with 95%
    intervals and head-to-head records against its parent and against the base (the first version)."""
    versions = {v.id: v for v in db.scalars(select(PolicyVersion).order_by(PolicyVersion.number))}
    if not versions:
        return []
    base_id = next(iter(versions))
    all_battles = battles(db=db)
    counts: dict[int, int] = {}
    for a, b, _ in all_battles:
        counts[a] = counts.get(a, 0) + 1
        counts[b] = counts.get(b, 0) + 1
    rows = [
        LeaderboardRowRead(
            version_id=vid,
            number=versions[vid].number,
            status=versions[vid].status.value,
            rating=rating.rating,
            rating_low=rating.low,
            rating_high=rating.high,
            battles=counts[vid],
            enough_battles=counts[vid] >= MIN_BATTLES,
            vs_parent=_record(all_battles, vid, versions[vid].parent_id),
            vs_base=_record(all_battles, vid, base_id),
        )
        for vid, rating in bt.fit(all_battles, anchor=base_id).items()
        if vid in versions
    ]
    return sorted(rows, key=lambda row: (not row.enough_battles, -row.rating))
