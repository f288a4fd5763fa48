"""The small judged world of tests/export/builders.py, for every test that asks for `world`."""

from __future__ import annotations

import pytest

from tests.export.builders import World, build_world


@pytest.fixture
def world(db, admin_token) -> World:
    return build_world(db)
