"""Builders for tests that need more than the one active version of the active_policy fixture."""

from __future__ import annotations

from app.policies import registry, service
from app.policies.models import PolicyStatus


def publish_version(settings, db, source_dir, number, *, parent_id=None, status=PolicyStatus.candidate) -> int:
    """Publish source_dir as policy version `number` and record it; returns its id."""
    path = registry.publish(
        registry_dir=settings.registry_dir,
        kind="policy",
        number=number,
        source_dir=source_dir,
        manifest={"parent": parent_id},
    )
    with db.session() as session:
        return service.record_policy_version(
            db=session,
            number=number,
            path=path,
            parent_id=parent_id,
            source=f"round {number}",
            status=status,
            metrics={"n": number},
        ).id
