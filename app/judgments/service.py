"""Where a judgment is stored: checked against the annotator's lock (app/queue/service.py), mapped from
screen sides to completions a/b, counted toward the comparison's overlap target (app/comparisons/service.py),
and, when its pair is a battle of a running human-gated rollout, weighed by the rollout's rule at once
(app/rollout/service.py). Judgments are only ever inserted."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, case, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.comparisons import service as comparisons_service
from app.comparisons.models import Choice, Comparison
from app.core.db import table_of, utcnow
from app.core.errors import Conflict, Unprocessable
from app.judgments.models import Judgment, ScreenChoice, Strength
from app.queue import service as queue_service
from app.rollout import service as rollout_service
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookEvent


def to_choice(side: ScreenChoice, *, left: str) -> Choice:
    """Map what was picked on screen to completions a/b, given which one ("a" or "b") was on the left."""
    if side == ScreenChoice.left:
        return Choice(left)
    if side == ScreenChoice.right:
        return Choice.b if left == "a" else Choice.a
    return Choice(side.value)


def submit(
    *,
    db: Session,
    annotator_id: int,
    comparison_id: int,
    side: ScreenChoice,
    strength: Strength | None = None,
    rationale: str = "",
    client_request_id: str | None = None,
    client_time_spent_ms: int | None = None,
    channel: str = "api",
    rationale_max_chars: int,
) -> tuple[Judgment, bool]:
    """Store the annotator's judgment of a pair they hold; returns (judgment, created).

    A retry carrying the same client_request_id returns the judgment stored the first time
    (created=False) and stores nothing new, whatever else it says.
    """
    rationale = rationale.strip()
    if len(rationale) > rationale_max_chars:
        raise Unprocessable(
            f"Rationale is limited to {rationale_max_chars} characters (got {len(rationale)}).",
            loc=("body", "rationale"),
        )
    if strength is not None and side in (ScreenChoice.tie, ScreenChoice.both_bad):
        raise Unprocessable(
            "Strength applies only when one side is better; leave it out for a tie or both bad.",
            loc=("body", "strength"),
        )
    # The row lock comes first: a concurrent retry of this submit waits here, then sees the first one.
    comparison = comparisons_service.get_for_update_or_raise(db=db, comparison_id=comparison_id)
    earlier = _earlier(
        db=db, annotator_id=annotator_id, comparison_id=comparison_id, client_request_id=client_request_id
    )
    if earlier is not None:
        return earlier, False
    lock = queue_service.lock_for_judgment(db=db, comparison=comparison, annotator_id=annotator_id)
    now = utcnow()
    choice = to_choice(side, left=lock.left)
    values = {
        "comparison_id": comparison.id,
        "annotator_id": annotator_id,
        "choice": choice,
        "strength": int(strength) if strength is not None else None,
        "rationale": rationale,
        "shown_left": lock.left,
        "time_spent_ms": _elapsed_ms(lock.shown_at or lock.created_at, now),
        "client_time_spent_ms": client_time_spent_ms,
        "client_request_id": client_request_id,
        "channel": channel,
        "created_at": now,
    }
    # Written through the tables, not the ORM unit of work: plain statements cost a fraction of a
    # flush, and this is the hottest write path of the app.
    try:
        judgment_id = db.execute(_INSERT, values).scalar_one()
    except IntegrityError as exc:
        # Only reachable when the same request id races in for a *different* pair (a client bug).
        raise Conflict(
            "This client_request_id was just used for another judgment.", loc=("body", "client_request_id")
        ) from exc
    completed = comparisons_service.count_judgment(db=db, comparison=comparison)
    queue_service.finish(db=db, comparison_id=comparison.id, lock_id=lock.id, completed=completed)
    events = [
        (
            WebhookEvent.judgment_created,
            {
                "judgment_id": judgment_id,
                "comparison_id": comparison.id,
                "annotator_id": annotator_id,
                "choice": choice.value,
                "strength": values["strength"],
                "channel": channel,
            },
        )
    ]
    if completed:
        events.append(
            (
                WebhookEvent.comparison_completed,
                {"comparison_id": comparison.id, "judgment_count": comparison.judgment_count},
            )
        )
    webhook_service.emit_all(db=db, events=events)
    rollout_service.evaluate_after_judgment(
        db=db, completion_a_id=comparison.completion_a_id, completion_b_id=comparison.completion_b_id, now=now
    )
    # The stored row, as a Judgment the caller can read (not attached to the session).
    return Judgment(id=judgment_id, **values), True


# Built once: statement construction costs more than running it (see app/queue/service.py).
_INSERT = insert(table_of(Judgment)).returning(table_of(Judgment).c.id)
_OF_PAIR = select(Judgment).where(
    Judgment.annotator_id == bindparam("annotator_id"), Judgment.comparison_id == bindparam("comparison_id")
)
_OF_PAIR_OR_REQUEST = select(Judgment).where(
    Judgment.annotator_id == bindparam("annotator_id"),
    or_(
        Judgment.comparison_id == bindparam("comparison_id"),
        Judgment.client_request_id == bindparam("client_request_id"),
    ),
)


def _earlier(*, db: Session, annotator_id: int, comparison_id: int, client_request_id: str | None) -> Judgment | None:
    """This annotator's stored judgment that the request repeats, if it is a retry; raises if the
    pair was already judged by another request, or the request id belongs to another pair."""
    params = {"annotator_id": annotator_id, "comparison_id": comparison_id}
    if client_request_id is None:
        found = list(db.scalars(_OF_PAIR, params))
    else:
        found = list(db.scalars(_OF_PAIR_OR_REQUEST, {**params, "client_request_id": client_request_id}))
    replay = next((j for j in found if client_request_id and j.client_request_id == client_request_id), None)
    if replay is not None:
        if replay.comparison_id != comparison_id:
            raise Conflict(
                f"client_request_id {client_request_id!r} was already used for your judgment of "
                f"pair {replay.comparison_id}; send a new id for a new judgment.",
                loc=("body", "client_request_id"),
            )
        return replay
    if found:
        raise Conflict(
            f"You already judged pair {comparison_id}; judgments are not changed once stored.",
            loc=("body", "comparison_id"),
        )
    return None


def _elapsed_ms(since: datetime, now: datetime) -> int:
    return max(0, int((now - since).total_seconds() * 1000))


def counts_for(*, db: Session, annotator_id: int, since: datetime) -> tuple[int, int]:
    """How many judgments the annotator stored since `since` (e.g. today) and in total."""
    recent, total = db.execute(
        select(func.count(case((Judgment.created_at >= since, 1))), func.count()).where(
            Judgment.annotator_id == annotator_id
        )
    ).one()
    return recent, total


def list_for_comparison(*, db: Session, comparison_id: int) -> list[tuple[Judgment, str]]:
    """The judgments of one comparison, oldest first, each with its annotator's username."""
    return list(
        db.execute(
            select(Judgment, User.username)
            .join(User, Judgment.annotator_id == User.id)
            .where(Judgment.comparison_id == comparison_id)
            .order_by(Judgment.id)
        ).all()
    )


def count_by_prompt(*, db: Session, prompt_ids: Collection[int]) -> dict[int, int]:
    """How many judgments each prompt's pairs received (prompts without any are left out)."""
    rows = db.execute(
        select(Comparison.prompt_id, func.count(Judgment.id))
        .join(Judgment, Judgment.comparison_id == Comparison.id)
        .where(Comparison.prompt_id.in_(prompt_ids))
        .group_by(Comparison.prompt_id)
    )
    return dict(rows.all())
