"""Secrets stay out of logs and files stay private: a failed statement's bound values are neither logged
nor in its exception, and a fresh data directory, its SQLite files and its key are owner-only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from app.api.deps import SessionDep
from app.cli import cli
from app.core.db import Database

SECRET = "whsec-do-not-log-4f9d2c"


def test_a_failing_statement_never_shows_its_bound_secret(app, caplog):
    def store_secret(db: SessionDep):
        db.execute(text("INSERT INTO no_such_table (secret) VALUES (:secret)"), {"secret": SECRET})

    app.add_api_route("/store-secret", store_secret, methods=["POST"])
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/store-secret").status_code == 500
    assert "no_such_table" in caplog.text  # the failure itself is logged, with its statement
    assert SECRET not in caplog.text

    with pytest.raises(Exception) as raised, app.state.db.session() as session:
        session.execute(text("SELECT secret FROM no_such_table WHERE secret = :secret"), {"secret": SECRET})
    assert "no_such_table" in str(raised.value) and SECRET not in str(raised.value)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)  # the usual default, under which files are created world-readable
    yield
    os.umask(previous)


def test_a_fresh_data_dir_and_its_database_are_owner_only(tmp_path, loose_umask):
    data_dir = tmp_path / "fresh" / "data"
    env = {"PREFLOOP_DATA_DIR": str(data_dir), "PREFLOOP_DATABASE_URL": "", "PREFLOOP_SECRET_KEY": ""}
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    database = Database(f"sqlite:///{data_dir / 'prefloop.db'}")
    with database.session() as session:  # a write: SQLite opens its -wal and -shm files
        session.execute(text("DELETE FROM users"))
        assert (data_dir / "prefloop.db-wal").exists() and (data_dir / "prefloop.db-shm").exists()
        assert _mode(data_dir) == 0o700
        for name in ("prefloop.db", "prefloop.db-wal", "prefloop.db-shm"):
            assert _mode(data_dir / name) == 0o600, name
    database.dispose()


def test_the_generated_session_key_is_owner_only_from_the_start(tmp_path, loose_umask):
    from app.core.config import Settings

    settings = Settings(DATA_DIR=tmp_path / "data", SECRET_KEY="", _env_file=None)
    assert len(settings.secret_key) > 40
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(tmp_path / "data" / "secret_key") == 0o600


def test_a_sqlite_database_outside_the_data_dir_is_created_owner_only(tmp_path, loose_umask):
    database = Database(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    assert _mode(tmp_path / "elsewhere.db") == 0o600
    database.dispose()
