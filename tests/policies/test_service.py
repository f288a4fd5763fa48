"""Recording versions, numbering around crashed publishes, activation and lineage."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.errors import Conflict, InvalidState, NotFound
from app.policies import registry, service
from app.policies.models import PolicyStatus, PolicyVersion
from tests.factories import publish_policy_version


def statuses(db) -> dict[int, str]:
    with db.session() as session:
        return {v.number: v.status.value for v in session.scalars(select(PolicyVersion))}


def test_activate_archives_the_previous_active_version(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    assert statuses(db) == {1: "active", 2: "candidate"}
    with db.session() as session:
        activated = service.activate(db=session, version_id=v2)
        assert activated.status is PolicyStatus.active and activated.activated_at is not None
    assert statuses(db) == {1: "archived", 2: "active"}
    with db.session() as session:  # rollback to the earlier version
        service.activate(db=session, version_id=active_policy)
        assert service.get_active(db=session).id == active_policy
    assert statuses(db) == {1: "active", 2: "archived"}


def test_activating_the_active_version_changes_nothing(db, active_policy):
    with db.session() as session:
        before = service.get_or_raise(db=session, version_id=active_policy).activated_at
        assert service.activate(db=session, version_id=active_policy).activated_at == before


def test_recording_an_active_version_archives_the_old_one(settings, db, tiny_policy_dir, active_policy):
    publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.active
    )
    assert statuses(db) == {1: "archived", 2: "active"}


def test_a_version_whose_files_are_gone_cannot_be_activated(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(settings, db, source_dir=tiny_policy_dir, number=2, status=PolicyStatus.candidate)
    (registry.version_dir(settings.registry_dir, "policy", 2) / "model.safetensors").unlink()
    refused = "Policy version 2 cannot be activated: .*has no weights"
    with db.session() as session, pytest.raises(InvalidState, match=refused):
        service.activate(db=session, version_id=v2)
    assert statuses(db) == {1: "active", 2: "candidate"}


def test_record_refuses_a_taken_number_and_an_unknown_parent(settings, db, active_policy):
    with db.session() as session, pytest.raises(Conflict, match="Policy version 1 is already recorded"):
        service.record_policy_version(
            db=session, number=1, path="x", parent_id=None, source="", metrics={}, status=PolicyStatus.candidate
        )
    with db.session() as session, pytest.raises(NotFound, match="Parent policy version id 99 does not exist"):
        service.record_policy_version(
            db=session, number=2, path="x", parent_id=99, source="", metrics={}, status=PolicyStatus.candidate
        )


def test_next_number_skips_a_directory_left_by_a_crash(settings, db, tiny_policy_dir, active_policy):
    with db.session() as session:
        assert service.next_policy_number(db=session, registry_dir=settings.registry_dir) == 2
    # Published but never recorded (the process died between the rename and the commit).
    registry.publish(
        registry_dir=settings.registry_dir, kind="policy", number=2, source_dir=tiny_policy_dir, manifest={}
    )
    with db.session() as session:
        assert service.next_policy_number(db=session, registry_dir=settings.registry_dir) == 3
        assert [v.number for v in service.list_versions(db=session)] == [1]
        assert service.next_reward_number(db=session, registry_dir=settings.registry_dir) == 1


def test_previous_version_is_the_parent_else_the_next_lower_number(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, status=PolicyStatus.candidate
    )  # a second registered base: no parent
    v3 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=3, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        get = lambda version_id: service.get_or_raise(db=session, version_id=version_id)  # noqa: E731
        assert service.previous_version(db=session, version=get(active_policy)) is None
        assert service.previous_version(db=session, version=get(v2)).number == 1
        assert service.previous_version(db=session, version=get(v3)).number == 1


def test_reward_models_are_recorded_and_listed(settings, db, tiny_policy_dir):
    path = registry.publish(
        registry_dir=settings.registry_dir, kind="reward", number=1, source_dir=tiny_policy_dir, manifest={}
    )
    with db.session() as session:
        service.record_reward_model(
            db=session, number=1, path=path, metrics={"accuracy": 0.7}, score_mean=0.5, score_std=2.0
        )
    with db.session() as session, pytest.raises(Conflict, match="Reward model 1 is already recorded"):
        service.record_reward_model(db=session, number=1, path=path, metrics={})
    with db.session() as session:
        [model] = service.list_reward_models(db=session)
        assert (model.number, model.score_mean, model.score_std) == (1, 0.5, 2.0)
        assert service.get_reward_model_by_number_or_raise(db=session, number=1).id == model.id
        with pytest.raises(NotFound, match="Reward model 2 does not exist"):
            service.get_reward_model_by_number_or_raise(db=session, number=2)


def test_lineage_walks_from_the_parent_back_to_the_base(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    v3 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=3, parent_id=v2, status=PolicyStatus.candidate
    )
    v4 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=4, status=PolicyStatus.candidate
    )  # a second registered base
    with db.session() as session:

        def lineage(version_id: int) -> list[int]:
            version = service.get_or_raise(db=session, version_id=version_id)
            return [ancestor.number for ancestor in service.lineage(db=session, version=version)]

        assert lineage(v3) == [2, 1]
        assert lineage(v2) == [1]
        assert lineage(active_policy) == lineage(v4) == []


def test_lineage_stops_where_hand_edited_parents_would_loop(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        service.get_or_raise(db=session, version_id=active_policy).parent_id = v2
    with db.session() as session:
        version = service.get_or_raise(db=session, version_id=v2)
        assert [ancestor.number for ancestor in service.lineage(db=session, version=version)] == [1]
