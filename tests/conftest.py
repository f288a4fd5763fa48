"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL, an app and clients.

PostgreSQL tests run when PREFLOOP_TEST_POSTGRES_URL points at a server (CI sets it); each test
session creates its own throw-away database there, so parallel runs do not collide.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.auth.models import Role
from app.core.config import Settings
from app.core.db import Database
from app.core.migrations import upgrade_to_head
from app.main import create_app
from app.models import Base
from tests.factories import make_token, make_user, publish_policy_version

POSTGRES_ENV = "PREFLOOP_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@contextmanager
def throwaway_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the PREFLOOP_TEST_POSTGRES_URL server, dropped afterwards;
    skips the test without that server."""
    server_url = os.environ.get(POSTGRES_ENV)
    if not server_url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://root@127.0.0.1:5432/test)")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with throwaway_postgres_database("prefloop_test") as url:
        upgrade_to_head(url)
        yield url


def _empty_postgres(url: str) -> None:
    """Delete every row and restart every id sequence, as TRUNCATE ... RESTART IDENTITY would. A test
    leaves few rows, and DELETE on them costs milliseconds where TRUNCATE makes new files for every table
    (hundreds of milliseconds per test, and a long checkpoint when the database is dropped)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        for sequence in connection.execute(text("SELECT relname FROM pg_class WHERE relkind = 'S'")).scalars():
            connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A migrated, empty database: a copy of the SQLite template, or the emptied PostgreSQL one."""
    if request.param == "sqlite":
        path = tmp_path / "prefloop.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=database_url,
        SECRET_KEY="test-secret-key",
        RUN_BACKGROUND=False,
        CREATE_FIRST_ADMIN=False,
        GC_FREEZE_ON_START=False,  # test apps come and go; frozen objects would never be collected
        _env_file=None,
    )


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def db(app) -> Database:
    """The app's own database handle, for arranging data and inspecting what was stored."""
    return app.state.db


@pytest.fixture
def admin_token(db) -> dict[str, str]:
    make_user(db, "root-admin", role=Role.admin)
    return {"Authorization": f"Bearer {make_token(db, 'root-admin')}"}


@pytest.fixture
def annotator_token(db) -> dict[str, str]:
    make_user(db, "ann", role=Role.annotator)
    return {"Authorization": f"Bearer {make_token(db, 'ann')}"}


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    """The embedded policy's "test" preset (2-layer GPT-2, its own BPE tokenizer with pad != eos and a
    chat template), built offline once per session. Read-only: copy it before changing its files."""
    from trainer.embedded.build import build_policy

    out_dir = tmp_path_factory.mktemp("tiny-policy") / "model"
    build_policy(out_dir, preset="test", seed=0, progress=False)
    return out_dir


@pytest.fixture
def active_policy(settings, db, tiny_policy_dir) -> int:
    """tiny_policy_dir published to this test's registry and recorded as version 1, active; its id."""
    return publish_policy_version(settings, db, source_dir=tiny_policy_dir)
