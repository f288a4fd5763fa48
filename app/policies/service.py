"""Policy and reward-model versions in the database: numbering, recording, activation, lineage.

Publishing a version is two steps, in this order (see app.policies.registry):

    path = registry.publish(registry_dir=..., kind="policy", number=n, source_dir=..., manifest=...)
    with db.session() as session:
        policy_service.record_policy_version(db=session, number=n, path=path, parent_id=...,
                                             source="round 7", status=PolicyStatus.candidate, metrics=...)

so a crash leaves at worst an unlisted directory, never a listed version without files.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState, NotFound
from app.policies import registry
from app.policies.models import PolicyStatus, PolicyVersion, RewardModel
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookEvent


def next_policy_number(*, db: Session, registry_dir: Path) -> int:
    """One above the highest number in the database or on disk (a crashed publish keeps its number)."""
    highest = db.scalar(select(func.max(PolicyVersion.number))) or 0
    return max(highest, registry.highest_number(registry_dir, "policy")) + 1


def next_reward_number(*, db: Session, registry_dir: Path) -> int:
    highest = db.scalar(select(func.max(RewardModel.number))) or 0
    return max(highest, registry.highest_number(registry_dir, "reward")) + 1


def record_policy_version(
    *,
    db: Session,
    number: int,
    path: Path | str,
    parent_id: int | None,
    source: str,
    status: PolicyStatus,
    metrics: dict,
) -> PolicyVersion:
    """The row for a version already published to `path`. status=active also archives the current one."""
    if db.scalar(select(PolicyVersion.id).where(PolicyVersion.number == number)) is not None:
        raise Conflict(f"Policy version {number} is already recorded.", loc=("number",))
    if parent_id is not None and get(db=db, version_id=parent_id) is None:
        raise NotFound(f"Parent policy version id {parent_id} does not exist.", loc=("parent_id",))
    version = PolicyVersion(
        number=number,
        path=str(path),
        parent_id=parent_id,
        source=source[:500],
        status=PolicyStatus.candidate,
        metrics=metrics,
    )
    db.add(version)
    db.flush()
    if status is PolicyStatus.active:
        return activate(db=db, version_id=version.id, check_files=False)
    version.status = status
    db.flush()
    return version


def record_reward_model(
    *,
    db: Session,
    number: int,
    path: Path | str,
    metrics: dict,
    score_mean: float = 0.0,
    score_std: float = 1.0,
) -> RewardModel:
    """The row for a reward model already published to `path`, with its score normalization."""
    if db.scalar(select(RewardModel.id).where(RewardModel.number == number)) is not None:
        raise Conflict(f"Reward model {number} is already recorded.", loc=("number",))
    model = RewardModel(number=number, path=str(path), metrics=metrics, score_mean=score_mean, score_std=score_std)
    db.add(model)
    db.flush()
    return model


def get(*, db: Session, version_id: int) -> PolicyVersion | None:
    return db.get(PolicyVersion, version_id)


def get_or_raise(*, db: Session, version_id: int) -> PolicyVersion:
    version = db.get(PolicyVersion, version_id)
    if version is None:
        raise NotFound(f"Policy version id {version_id} does not exist.", loc=("path", "version_id"))
    return version


def get_by_number(*, db: Session, number: int) -> PolicyVersion | None:
    return db.scalar(select(PolicyVersion).where(PolicyVersion.number == number))


def get_by_number_or_raise(*, db: Session, number: int) -> PolicyVersion:
    version = get_by_number(db=db, number=number)
    if version is None:
        raise NotFound(f"Policy version {number} does not exist.", loc=("path", "number"))
    return version


def get_active(*, db: Session) -> PolicyVersion | None:
    return db.scalar(select(PolicyVersion).where(PolicyVersion.status == PolicyStatus.active))


def list_versions(*, db: Session) -> list[PolicyVersion]:
    """Every policy version, newest first."""
    return list(db.scalars(select(PolicyVersion).order_by(PolicyVersion.number.desc())))


def lineage(*, db: Session, version: PolicyVersion) -> list[PolicyVersion]:
    """The versions `version` descends from, its parent first and its base last; empty for a base."""
    ancestors: list[PolicyVersion] = []
    seen = {version.id}
    parent_id = version.parent_id
    # Rows edited by hand could form a loop; the walk stops where one would begin again.
    while parent_id is not None and parent_id not in seen:
        parent = get_or_raise(db=db, version_id=parent_id)
        ancestors.append(parent)
        seen.add(parent_id)
        parent_id = parent.parent_id
    return ancestors


def activate(*, db: Session, version_id: int, check_files: bool = True) -> PolicyVersion:
    """Make a version the active one (a rollback when it is an earlier one); the previous active one
    is archived. With check_files, a version whose directory is gone or broken is refused."""
    version = get_or_raise(db=db, version_id=version_id)
    if version.status is PolicyStatus.active:
        return version
    if check_files:
        try:
            registry.validate_model_dir(Path(version.path))
        except registry.InvalidModelDir as exc:
            raise InvalidState(
                f"Policy version {version.number} cannot be activated: {exc.msg}", loc=("path", "number")
            ) from exc
    try:
        with db.begin_nested():
            # Archive first and flush: the partial unique index allows one active row at any moment,
            # and a concurrent activation that got there first makes this flush fail instead.
            current = get_active(db=db)
            if current is not None:
                current.status = PolicyStatus.archived
                db.flush()
            version.status = PolicyStatus.active
            version.activated_at = utcnow()
            db.flush()
    except IntegrityError as exc:
        raise Conflict("Another version was activated at the same moment; reload and try again.") from exc
    webhook_service.emit(
        db=db,
        event=WebhookEvent.policy_activated,
        payload={
            "policy_number": version.number,
            "previous_number": current.number if current is not None else None,
            "source": version.source,
        },
    )
    return version


def previous_version(*, db: Session, version: PolicyVersion) -> PolicyVersion | None:
    """What `version` is compared with: its parent, or for a registered base the version numbered
    just below it; None for the first version."""
    if version.parent_id is not None:
        return db.get(PolicyVersion, version.parent_id)
    return db.scalar(
        select(PolicyVersion)
        .where(PolicyVersion.number < version.number)
        .order_by(PolicyVersion.number.desc())
        .limit(1)
    )


def list_reward_models(*, db: Session) -> list[RewardModel]:
    """Every reward model, newest first."""
    return list(db.scalars(select(RewardModel).order_by(RewardModel.number.desc())))


def get_reward_model_by_number_or_raise(*, db: Session, number: int) -> RewardModel:
    model = db.scalar(select(RewardModel).where(RewardModel.number == number))
    if model is None:
        raise NotFound(f"Reward model {number} does not exist.", loc=("path", "number"))
    return model
