"""`prefloop export`: the same bytes as the API, written atomically, with clear errors."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


def _env(settings) -> dict[str, str]:
    return {
        "PREFLOOP_DATABASE_URL": settings.database_url,
        "PREFLOOP_DATA_DIR": str(settings.DATA_DIR),
        "PREFLOOP_SECRET_KEY": settings.SECRET_KEY,
    }


@pytest.mark.parametrize(
    ("args", "params"),
    [
        (["--format", "trl"], {"format": "trl"}),
        (
            ["--format", "raw", "--choice", "tie", "--choice", "both_bad"],
            {"format": "raw", "choice": ["tie", "both_bad"]},
        ),
        (
            ["--format", "kto", "--aggregate", "majority", "--include-ties", "--no-gold"],
            {"format": "kto", "aggregate": "majority", "include_ties": "true", "gold": "false"},
        ),
    ],
)
def test_export_writes_what_the_api_serves(client, world, admin_token, settings, tmp_path, args, params):
    out = tmp_path / "prefs.jsonl"
    result = runner.invoke(cli, ["export", *args, "--out", str(out)], env=_env(settings))
    assert result.exit_code == 0, result.output
    served = client.get("/api/v1/export", params=params, headers=admin_token).content
    assert out.read_bytes() == served
    # The summary counts the rows in the file, which formats that drop ties or aggregate make fewer.
    rows = served.count(b"\n")
    assert f"wrote {rows} {params['format']} rows to {out}" in result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_parquet_is_picked_by_extension(world, settings, tmp_path):
    out = tmp_path / "prefs.parquet"
    result = runner.invoke(
        cli,
        ["export", "--format", "hh", "--since", "2026-01-01T01:00:00Z", "--out", str(out)],
        env=_env(settings),
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(io.BytesIO(out.read_bytes())).num_rows == 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--round", "999"], "Round 999 does not exist."),
        (["--prompt", "999"], "Prompt 999 does not exist."),
        (["--since", "last week"], "--since: Input should be a valid datetime"),
        (["--format", "raw", "--aggregate", "majority"], "aggregate applies to trl, hh and kto"),
    ],
)
def test_bad_options_fail_clearly_and_write_nothing(world, settings, tmp_path, args, message):
    out = tmp_path / "prefs.jsonl"
    result = runner.invoke(cli, ["export", *args, "--out", str(out)], env=_env(settings))
    assert result.exit_code == 2 and message in result.output, result.output
    assert list(tmp_path.glob("prefs*")) == [] and list(tmp_path.glob(".prefs*")) == []
