"""Revision 0003 gives the tokens that existed before scopes the scopes their owner's role implies, so
they keep working."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import JSON, column, create_engine, select, table, text

from app.core.config import Settings
from app.core.migrations import alembic_config
from app.core.security import new_api_token
from app.main import create_app
from tests.conftest import throwaway_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> Iterator[str]:
    """A database with no schema yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with throwaway_postgres_database("prefloop_migration") as url:
        yield url


def test_upgrade_fills_scopes_for_existing_tokens(empty_url, tmp_path):
    command.upgrade(alembic_config(empty_url), "0001")
    tokens = {}
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        for user_id, role in ((1, "admin"), (2, "annotator")):
            connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, is_active, excluded_from_training, "
                    "failed_logins, created_at) VALUES (:id, :name, 'x', :role, true, false, 0, CURRENT_TIMESTAMP)"
                ),
                {"id": user_id, "name": f"user{user_id}", "role": role},
            )
            token, prefix, token_hash = new_api_token()
            tokens[role] = token
            connection.execute(
                text(
                    "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
                    "VALUES (:user_id, 'old', :prefix, :hash, CURRENT_TIMESTAMP)"
                ),
                {"user_id": user_id, "prefix": prefix, "hash": token_hash},
            )
    engine.dispose()

    command.upgrade(alembic_config(empty_url), "0003")

    api_tokens = table("api_tokens", column("user_id"), column("scopes", JSON), column("expires_at"))
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        rows = connection.execute(select(api_tokens).order_by(api_tokens.c.user_id)).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(1, ["admin", "annotate", "export"], None), (2, ["annotate"], None)]

    # And the old tokens keep working, with those scopes, once the app runs on the migrated database.
    command.upgrade(alembic_config(empty_url), "head")
    settings = Settings(
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=empty_url,
        SECRET_KEY="test-secret-key",
        RUN_BACKGROUND=False,
        CREATE_FIRST_ADMIN=False,
        GC_FREEZE_ON_START=False,
        _env_file=None,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        annotator = {"Authorization": f"Bearer {tokens['annotator']}"}
        assert client.get("/api/v1/users", headers=admin).status_code == 200
        assert client.get("/api/v1/queue/next", headers=annotator).status_code == 204
        listed = client.get("/api/v1/tokens", headers=admin).json()
        assert {t["user_id"]: t["scopes"] for t in listed} == {1: ["admin", "annotate", "export"], 2: ["annotate"]}
