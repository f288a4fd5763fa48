"""A parent and a candidate with real (smallest) model directories, so activation's file check passes."""

from __future__ import annotations

import pytest

from app.policies.models import PolicyStatus
from tests.factories import publish_policy_version
from tests.training.conftest import fake_model_dir


@pytest.fixture
def versions(settings, db, tmp_path) -> tuple[int, int]:
    """(parent v1, active; candidate v2, its child) ids."""
    model = fake_model_dir(tmp_path / "model")
    parent = publish_policy_version(settings, db, source_dir=model, number=1)
    candidate = publish_policy_version(
        settings, db, source_dir=model, number=2, status=PolicyStatus.candidate, parent_id=parent
    )
    return parent, candidate
