"""Revision 0004 encrypts the signing secrets of existing endpoints with the key the app reads."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from app.core.migrations import alembic_config
from app.webhooks import crypto


def test_existing_secrets_are_encrypted_and_a_downgrade_restores_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLOOP_SECRET_KEY", "the deployment's key")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhook_endpoints (url, secret, events, description, is_active, created_at) "
                "VALUES ('https://hooks.example.com/in', 'whsec_plaintext', '[]', '', 1, '2026-11-30 10:00:00')"
            )
        )
    command.upgrade(config, "0004")
    with engine.connect() as connection:
        encrypted, prefix = connection.execute(
            text("SELECT encrypted_secret, secret_prefix FROM webhook_endpoints")
        ).one()
    assert "plaintext" not in encrypted and prefix == "whsec_plai"
    assert crypto.decrypt("the deployment's key", encrypted) == "whsec_plaintext"
    command.downgrade(config, "0001")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT secret FROM webhook_endpoints")).scalar_one() == "whsec_plaintext"
    engine.dispose()
