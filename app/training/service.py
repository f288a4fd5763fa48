"""Training rounds in the database: launching, the state machine, claiming, progress, cancel, retry, schedule.

    queued ──claim──► running ──► succeeded | rejected (a gate refused it) | failed | cancelled
      │                  └──► queued (its worker shut down; the next claim resumes it)
      └──cancel──► cancelled          failed | cancelled ──retry──► queued

At most one round is queued or running (TrainingRound.in_flight is unique). No torch here, and no
files: the worker (app/training/worker.py) runs rounds and calls these functions to record them.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.core.config import Settings
from app.core.errors import Conflict, InvalidState, NotFound
from app.policies.models import PolicyVersion, RewardModel
from app.training import round_view
from app.training.models import RoundMetric, RoundStatus, TrainingRound
from app.training.plan import plan_round
from app.training.schemas import RoundRead
from app.training.snapshot import count_usable_judgments
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookEvent
from trainer.contract import APP_STAGES, STAGE_ORDER, Stage  # snapshot and publish are the worker's stages

S = RoundStatus
TRANSITIONS: dict[RoundStatus, set[RoundStatus]] = {
    S.queued: {S.running, S.cancelled},
    S.running: {S.succeeded, S.rejected, S.failed, S.cancelled, S.queued},
    S.failed: {S.queued},
    S.cancelled: {S.queued},
    S.succeeded: set(),
    S.rejected: set(),
}
FINISHED = {S.succeeded, S.rejected, S.failed, S.cancelled}


def _move(round_: TrainingRound, to: RoundStatus, *, now: datetime | None = None) -> None:
    if to not in TRANSITIONS[round_.status]:
        raise InvalidState(
            f"Round {round_.id} is {round_.status.value}; it cannot become {to.value}.",
            loc=("path", "round_id"),
        )
    round_.status = to
    round_.finished_at = now if to in FINISHED else None


def _announce_finished(db: Session, round_: TrainingRound) -> None:
    policy = db.get(PolicyVersion, round_.policy_version_id) if round_.policy_version_id else None
    webhook_service.emit(
        db=db,
        event=WebhookEvent.round_finished,
        payload={
            "round_id": round_.id,
            "status": round_.status.value,
            "error": round_.error,
            "policy_number": policy.number if policy else None,
            "policy_status": policy.status.value if policy else None,
            # The same figures as the round's page and GET /rounds/{id} (app/training/round_view.py).
            "side_effects": [asdict(row) for row in round_view.side_effect_rows(round_.results)],
        },
    )


# ---- reading ------------------------------------------------------------------------------------------


def get(*, db: Session, round_id: int) -> TrainingRound | None:
    return db.get(TrainingRound, round_id)


def get_or_raise(*, db: Session, round_id: int, lock: bool = False) -> TrainingRound:
    """The round (404 otherwise). lock: hold its row until the transaction ends, so a decision taken on
    its status (cancel, retry) cannot race a worker changing it."""
    round_ = db.get(TrainingRound, round_id, with_for_update=lock, populate_existing=lock)
    if round_ is None:
        raise NotFound(f"Training round {round_id} does not exist.", loc=("path", "round_id"))
    return round_


def list_(
    *, db: Session, status: RoundStatus | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[TrainingRound], int]:
    """Rounds newest first, and how many match in all."""
    where = [TrainingRound.status == status] if status is not None else []
    total = db.scalar(select(func.count()).select_from(TrainingRound).where(*where)) or 0
    rows = db.scalars(select(TrainingRound).where(*where).order_by(TrainingRound.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def in_flight(*, db: Session) -> TrainingRound | None:
    return db.scalar(select(TrainingRound).where(TrainingRound.in_flight.is_(True)))


def metric_history(*, db: Session, round_id: int, since_id: int | None = None, limit: int = 5000) -> list[RoundMetric]:
    """Logged points of a round in the order they arrived, only those after `since_id` when given."""
    get_or_raise(db=db, round_id=round_id)
    where = [RoundMetric.round_id == round_id]
    if since_id is not None:
        where.append(RoundMetric.id > since_id)
    return list(db.scalars(select(RoundMetric).where(*where).order_by(RoundMetric.id).limit(limit)))


def to_read(*, db: Session, round_: TrainingRound) -> RoundRead:
    """The API/CLI view of a round: its row plus progress and the numbers of the versions it touched."""

    def number(model: type[PolicyVersion] | type[RewardModel], row_id: int | None) -> int | None:
        return db.scalar(select(model.number).where(model.id == row_id)) if row_id is not None else None

    states = round_view.stage_states(
        status=round_.status,
        stage=round_.stage,
        completed_stages=round_.completed_stages,
        started=round_.started_at is not None,
    )
    return RoundRead.model_validate(round_).model_copy(
        update={
            "progress": min(1.0, round_.step / round_.total_steps) if round_.total_steps else 0.0,
            "stage_states": states,
            "stages_done": round_view.stages_done(states),
            "round_progress": round_view.round_fraction(states, step=round_.step, total_steps=round_.total_steps),
            "trigger": "admin" if round_.requested_by_id is not None else "schedule",
            "base_policy_number": number(PolicyVersion, round_.base_policy_version_id),
            "policy_number": number(PolicyVersion, round_.policy_version_id),
            "reward_model_number": number(RewardModel, round_.reward_model_id),
            "side_effects": round_view.side_effect_rows(round_.results),
        }
    )


def producing_rounds(*, db: Session, version_ids: list[int]) -> dict[int, int]:
    """version id -> id of the training round that produced it, for versions made by a round."""
    rows = db.execute(
        select(TrainingRound.policy_version_id, TrainingRound.id).where(
            TrainingRound.policy_version_id.in_(version_ids)
        )
    )
    return {version_id: round_id for version_id, round_id in rows if version_id is not None}


def activation_verdicts(*, db: Session, version_ids: list[int]) -> dict[int, dict]:
    """version id -> the activation verdict its round recorded at publish (app/training/activation.py)."""
    rows = db.execute(
        select(TrainingRound.policy_version_id, TrainingRound.results).where(
            TrainingRound.policy_version_id.in_(version_ids)
        )
    )
    return {version_id: results["activation"] for version_id, results in rows if "activation" in (results or {})}


def highest_snapshotted_judgment_id(*, db: Session) -> int:
    """The highest judgment id any round's snapshot has included (0 before the first snapshot): the
    judgments above it are new to training."""
    return db.scalar(select(func.max(TrainingRound.snapshot_max_judgment_id))) or 0


# ---- launching ----------------------------------------------------------------------------------------


def launch(*, db: Session, settings: Settings, requested_by: User | None, config_overrides: dict) -> TrainingRound:
    """Queue a round (requested_by None: the schedule). 422 for a bad config, 409 while one is in flight."""
    config = plan_round(db=db, settings=settings, overrides=config_overrides).config
    _refuse_if_in_flight(db)
    round_ = TrainingRound(config=config.model_dump(), requested_by_id=requested_by.id if requested_by else None)
    try:
        with db.begin_nested():
            db.add(round_)
            db.flush()
    except IntegrityError as exc:
        # Another launch committed between the check above and this insert.
        raise Conflict("Another training round was queued at the same moment.") from exc
    return round_


def _refuse_if_in_flight(db: Session) -> None:
    current = in_flight(db=db)
    if current is not None:
        raise Conflict(f"Round {current.id} is {current.status.value}; wait for it to finish or cancel it first.")


def maybe_schedule(*, db: Session, settings: Settings) -> TrainingRound | None:
    """Queue a round when TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS usable judgments arrived since the last
    round's snapshot and none is in flight; None otherwise. A round that failed on its data counts as
    the last round too, so a bad data set is not retried until enough new judgments arrive."""
    needed = settings.TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS
    if needed <= 0 or in_flight(db=db) is not None:
        return None
    last_bound = highest_snapshotted_judgment_id(db=db)
    if count_usable_judgments(db=db, after_id=last_bound, include_ties=settings.TRAINING_INCLUDE_TIES) < needed:
        return None
    try:
        return launch(db=db, settings=settings, requested_by=None, config_overrides={})
    except Conflict:
        return None  # another worker's schedule got there first


# ---- the worker's side: claim, heartbeat, progress, outcome --------------------------------------------


def claim_next(*, db: Session, worker_id: str, executor: str, now: datetime) -> TrainingRound | None:
    """Atomically take the oldest queued round for `worker_id`; None when there is none.

    Call it in a Database.write_session(): on SQLite that holds the write lock from the first read, so
    two workers cannot both see the round queued; on PostgreSQL the row lock with SKIP LOCKED makes a
    racing worker pass it by.
    """
    round_ = db.scalar(
        select(TrainingRound)
        .where(TrainingRound.status == S.queued)
        .order_by(TrainingRound.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if round_ is None:
        return None
    _move(round_, S.running)
    round_.worker_id, round_.executor, round_.handle = worker_id, executor, ""
    round_.heartbeat_at = now
    round_.started_at = round_.started_at or now
    db.flush()
    return round_


def _owned(db: Session, round_id: int, worker_id: str, *, lock: bool = False) -> TrainingRound:
    """The round, if `worker_id` still runs it; InvalidState once it was taken away (stale, cancelled)."""
    round_ = get_or_raise(db=db, round_id=round_id, lock=lock)
    if round_.status != S.running or round_.worker_id != worker_id:
        raise InvalidState(f"Round {round_id} is no longer run by worker {worker_id} ({round_.status.value}).")
    return round_


def heartbeat(*, db: Session, round_id: int, worker_id: str, now: datetime) -> TrainingRound:
    """Prove the worker is alive, and lock the row until the transaction ends: no other worker can
    declare the round stale meanwhile (the worker publishes inside such a transaction)."""
    round_ = _owned(db, round_id, worker_id, lock=True)
    round_.heartbeat_at = now
    db.flush()
    return round_


def record_snapshot(
    *, db: Session, round_id: int, worker_id: str, max_judgment_id: int, policy_version_id: int, counts: dict
) -> TrainingRound:
    """The data bound and starting version of a round whose snapshot directory was written."""
    round_ = _owned(db, round_id, worker_id)
    round_.snapshot_max_judgment_id = max_judgment_id
    round_.base_policy_version_id = policy_version_id
    round_.completed_stages = [Stage.snapshot]
    round_.results = {Stage.snapshot: counts}
    # Points of an earlier attempt were trained on other data.
    db.execute(delete(RoundMetric).where(RoundMetric.round_id == round_id))
    db.flush()
    return round_


def fail_snapshot(
    *, db: Session, round_id: int, worker_id: str, max_judgment_id: int | None, error: str, now: datetime
) -> TrainingRound:
    """The data could not make a round; the bound it was read at still counts for the schedule."""
    round_ = _owned(db, round_id, worker_id)
    round_.snapshot_max_judgment_id = max_judgment_id
    return finish(db=db, round_id=round_id, worker_id=worker_id, status=S.failed, now=now, error=error)


def record_launch(*, db: Session, round_id: int, worker_id: str, handle: str) -> TrainingRound:
    round_ = _owned(db, round_id, worker_id)
    round_.handle = handle
    db.flush()
    return round_


def record_progress(
    *,
    db: Session,
    round_id: int,
    worker_id: str,
    now: datetime,
    status: dict,
    points: list[dict],
    log_tail: str,
) -> TrainingRound:
    """Copy the trainer's status.json and new metric points into the round (also a heartbeat).

    A point replaces an earlier one with the same (stage, step) and every later one of that stage: a
    trainer resumed from a checkpoint logs those steps again, and the chart must not show them twice.
    """
    round_ = _owned(db, round_id, worker_id)
    round_.heartbeat_at = now
    round_.log_tail = log_tail
    if status:
        round_.stage = str(status.get("stage", round_.stage))
        round_.step = int(status.get("step", 0))
        round_.total_steps = int(status.get("total_steps", 0))
        round_.latest_metrics = status.get("latest_metrics", {})
        done = (set(round_.completed_stages) & APP_STAGES) | set(status.get("completed_stages", []))
        round_.completed_stages = [s for s in STAGE_ORDER if s in done]
        round_.results = round_.results | status.get("results", {})
    for stage, stage_points in _fold(points).items():
        db.execute(
            delete(RoundMetric).where(
                RoundMetric.round_id == round_id,
                RoundMetric.stage == stage,
                RoundMetric.step >= stage_points[0]["step"],
            )
        )
        db.add_all(
            RoundMetric(round_id=round_id, stage=stage, step=p["step"], values=p["values"]) for p in stage_points
        )
    db.flush()
    return round_


def _fold(points: list[dict]) -> dict[str, list[dict]]:
    """Points per stage after applying 'a repeated step rewinds the stage' within this batch."""
    stages: dict[str, list[dict]] = {}
    for point in points:
        kept = stages.setdefault(point["stage"], [])
        while kept and kept[-1]["step"] >= point["step"]:
            kept.pop()
        kept.append(point)
    return stages


def finish(
    *,
    db: Session,
    round_id: int,
    worker_id: str,
    status: RoundStatus,
    now: datetime,
    error: str = "",
    reward_model_id: int | None = None,
    policy_version_id: int | None = None,
) -> TrainingRound:
    """Record how a running round ended: succeeded (with its versions), rejected, failed or cancelled."""
    round_ = _owned(db, round_id, worker_id)
    _move(round_, status, now=now)
    round_.error = error
    round_.cancel_requested = False
    if status == S.succeeded:
        round_.reward_model_id, round_.policy_version_id = reward_model_id, policy_version_id
        round_.completed_stages = [*round_.completed_stages, Stage.publish]
        round_.stage = Stage.publish
    db.flush()
    _announce_finished(db, round_)
    return round_


def requeue(*, db: Session, round_id: int, worker_id: str, reason: str) -> TrainingRound:
    """Hand a running round back to the queue (its worker is shutting down); it resumes when claimed."""
    round_ = _owned(db, round_id, worker_id)
    _move(round_, S.queued)
    round_.worker_id, round_.handle, round_.heartbeat_at = "", "", None
    round_.error = reason
    db.flush()
    return round_


def fail_stale(*, db: Session, now: datetime, timeout_s: float) -> list[TrainingRound]:
    """Mark running rounds whose worker stopped heartbeating as failed (an admin may retry them)."""
    cutoff = now - timedelta(seconds=timeout_s)
    stale = []
    for round_ in db.scalars(select(TrainingRound).where(TrainingRound.status == S.running).with_for_update()):
        if round_.heartbeat_at is None or round_.heartbeat_at >= cutoff:
            continue
        silent_s = (now - round_.heartbeat_at).total_seconds()
        _move(round_, S.failed, now=now)
        round_.error = (
            f"Worker {round_.worker_id or '?'} stopped reporting (no heartbeat for {silent_s:.0f} s, "
            f"limit {timeout_s:.0f} s); it probably died. Retry the round to resume it."
        )
        _announce_finished(db, round_)
        stale.append(round_)
    db.flush()
    return stale


# ---- the admin's side: cancel, retry -------------------------------------------------------------------


def request_cancel(*, db: Session, round_id: int, now: datetime) -> TrainingRound:
    """A queued round is cancelled at once; a running one when its worker sees the request (seconds)."""
    round_ = get_or_raise(db=db, round_id=round_id, lock=True)
    if round_.status == S.queued:
        _move(round_, S.cancelled, now=now)
        round_.error = "Cancelled before it started."
        _announce_finished(db, round_)
    elif round_.status == S.running:
        round_.cancel_requested = True
    else:
        raise InvalidState(
            f"Round {round_id} is {round_.status.value}; only a queued or running round can be cancelled.",
            loc=("path", "round_id"),
        )
    db.flush()
    return round_


def retry(*, db: Session, round_id: int) -> TrainingRound:
    """Queue a failed or cancelled round again. A failed one resumes after its last completed stage (its
    snapshot, and PPO from its last checkpoint); a cancelled one starts over from a new snapshot."""
    round_ = get_or_raise(db=db, round_id=round_id, lock=True)
    if round_.status not in (S.failed, S.cancelled):
        raise InvalidState(
            f"Round {round_id} is {round_.status.value}; only a failed or cancelled round can be retried.",
            loc=("path", "round_id"),
        )
    _refuse_if_in_flight(db)
    try:
        with db.begin_nested():
            if round_.status == S.cancelled:  # its work directory was deleted: nothing of it carries over
                round_.stage, round_.step, round_.total_steps, round_.log_tail = "", 0, 0, ""
                round_.completed_stages, round_.results, round_.latest_metrics = [], {}, {}
            _move(round_, S.queued)
            round_.worker_id, round_.handle, round_.heartbeat_at = "", "", None
            round_.error, round_.cancel_requested = "", False
            db.flush()
    except IntegrityError as exc:
        raise Conflict("Another training round was queued at the same moment.") from exc
    return round_
