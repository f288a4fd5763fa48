"""The account commands, run as a user would: `prefloop users create`, `prefloop tokens create|list`."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from app.auth.models import Role, User
from app.cli import cli, configure_logging, ensure_first_admin
from app.core.db import Database, utcnow
from tests.factories import PASSWORD, make_user
from tests.helpers import login

runner = CliRunner()


def _env(settings) -> dict[str, str]:
    return {"PREFLOOP_DATABASE_URL": settings.database_url, "PREFLOOP_DATA_DIR": str(settings.DATA_DIR)}


def test_users_create_admin_and_token_authenticates(client, settings, db):
    created = runner.invoke(
        cli, ["users", "create", "ops", "--admin", "--password", "a long password"], env=_env(settings)
    )
    assert created.exit_code == 0, created.output
    assert "created admin 'ops'" in created.output
    token = runner.invoke(cli, ["tokens", "create", "ops"], env=_env(settings))
    assert token.exit_code == 0
    response = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token.output.strip()}"})
    assert response.status_code == 200 and response.json()[0]["username"] == "ops"


def test_users_create_rejects_duplicates_and_short_passwords(settings, db):
    env = _env(settings)
    assert runner.invoke(cli, ["users", "create", "ann", "--password", "long enough"], env=env).exit_code == 0
    duplicate = runner.invoke(cli, ["users", "create", "ann", "--password", "long enough"], env=env)
    assert duplicate.exit_code == 2 and "already taken" in duplicate.output
    short = runner.invoke(cli, ["users", "create", "bob", "--password", "short"], env=env)
    assert short.exit_code == 2 and "at least 8" in short.output


def test_tokens_create_for_unknown_user_fails_clearly(settings, db):
    result = runner.invoke(cli, ["tokens", "create", "ghost"], env=_env(settings))
    assert result.exit_code == 2 and "no user named 'ghost'" in result.output


def test_first_admin_is_created_once_with_a_random_password(settings, db):
    first = ensure_first_admin(settings, db)
    assert first is not None
    username, password = first
    assert len(password) >= 12
    assert ensure_first_admin(settings, db) is None  # an admin exists: nothing more is created
    check = Database(settings.database_url)
    with check.session() as session:
        admins = list(session.scalars(select(User).where(User.role == Role.admin)))
    check.dispose()
    assert [a.username for a in admins] == [username]


def test_tokens_create_with_scopes_and_expiry_and_list_shows_them(client, settings, db):
    env = _env(settings)
    assert (
        runner.invoke(cli, ["users", "create", "ops", "--admin", "--password", "a long password"], env=env).exit_code
        == 0
    )
    created = runner.invoke(
        cli,
        [
            "tokens",
            "create",
            "ops",
            "--name",
            "exporter",
            "--scope",
            "export",
            "--scope",
            "annotate",
            "--expires-in-days",
            "7",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    headers = {"Authorization": f"Bearer {created.output.strip()}"}
    assert client.get("/api/v1/judgments", headers=headers).status_code == 200
    refused = client.get("/api/v1/users", headers=headers)
    assert refused.status_code == 403 and "'admin' scope" in refused.json()["detail"][0]["msg"]

    listed = runner.invoke(cli, ["tokens", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if "exporter" in line]
    expiry = (utcnow() + timedelta(days=7)).date().isoformat()
    assert "annotate,export" in row and expiry in row and row.endswith("active")


def test_tokens_create_refuses_scopes_beyond_the_role(settings, db):
    env = _env(settings)
    assert runner.invoke(cli, ["users", "create", "ann", "--password", "long enough"], env=env).exit_code == 0
    refused = runner.invoke(cli, ["tokens", "create", "ann", "--scope", "admin"], env=env)
    assert refused.exit_code == 2 and "cannot hold the 'admin' scope" in refused.output
    unknown = runner.invoke(cli, ["tokens", "create", "ann", "--scope", "root"], env=env)
    assert unknown.exit_code == 2
    assert "ann" not in runner.invoke(cli, ["tokens", "list"], env=env).output


def test_users_set_password_signs_the_user_out_everywhere(client, settings, db):
    make_user(db, "alice")
    assert login(client, "alice").status_code == 303
    env = _env(settings)
    reset = runner.invoke(cli, ["users", "set-password", "alice", "--password", "a fresh password"], env=env)
    assert reset.exit_code == 0, reset.output
    assert "signed out everywhere" in reset.output
    assert client.get("/api/v1/me").status_code == 401
    assert login(client, "alice", PASSWORD).status_code == 401
    assert login(client, "alice", "a fresh password").status_code == 303
    short = runner.invoke(cli, ["users", "set-password", "alice", "--password", "short"], env=env)
    assert short.exit_code == 2 and "at least 8" in short.output
    ghost = runner.invoke(cli, ["users", "set-password", "ghost", "--password", "long enough"], env=env)
    assert ghost.exit_code == 2 and "no user named 'ghost'" in ghost.output


def test_every_command_the_pages_and_readme_name_exists():
    """A page or the README that tells an admin to run `prefloop X Y` names a real command."""
    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in (root / "templates").rglob("*.html")] + [(root / "README.md").read_text()]
    # In code: `prefloop …`, <code>prefloop …</code>, or a line of a code block that starts with it.
    command = r"prefloop ([a-z]+(?: [a-z][a-z-]*)?)"
    code = re.compile(rf"(?:`|<code>|^\s*){command}", re.MULTILINE)
    named = {m.group(1) for text in texts for m in code.finditer(text)}
    assert "policy register" in named
    for command in sorted(named):
        words = command.split()
        result = runner.invoke(cli, [*words, "--help"])
        if result.exit_code != 0 and len(words) == 2:  # "prefloop serve then ..." reads a second word of prose
            result = runner.invoke(cli, [words[0], "--help"])
        assert result.exit_code == 0, f"prefloop {command}: {result.output}"


def test_the_command_line_logs_our_progress_but_not_every_http_request(caplog):
    configure_logging()
    caplog.set_level(logging.INFO)  # the root at INFO, as configure_logging leaves it outside pytest
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/api/v1/judgments")
    logging.getLogger("prefloop.simulate").info("400 judgments submitted")
    assert [r.getMessage() for r in caplog.records] == ["400 judgments submitted"]
