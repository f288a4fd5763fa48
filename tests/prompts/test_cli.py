"""`prefloop prompts import FILE` through the real command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import cli
from app.prompts import service


def run(settings, *args):
    env = {"PREFLOOP_DATA_DIR": str(settings.DATA_DIR), "PREFLOOP_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli, ["prompts", "import", *args], env=env)


def test_import_jsonl_then_again_as_duplicates(settings, db, tmp_path):
    file = tmp_path / "prompts.jsonl"
    file.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(3)))
    first = run(settings, str(file))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"imported 3 prompts from {file} (0 duplicates, 0 bad lines skipped)"
    again = run(settings, str(file), "--source", "vendor")
    assert again.stdout.strip() == f"imported 0 prompts from {file} (3 duplicates, 0 bad lines skipped)"
    with db.session() as session:
        assert {p.source for p in service.list_(db=session)[0]} == {"prompts.jsonl"}


def test_bad_lines_refuse_the_file_unless_skipped(settings, db, tmp_path):
    file = tmp_path / "prompts.csv"
    file.write_text("prompt,tags\nHello there,greeting\n,empty\nBye,farewell|short\n")
    refused = run(settings, str(file))
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "error: 1 bad line in the file: line 3: 'prompt' must not be blank; "
        "nothing was imported (skip bad lines to import the good ones)."
    )
    with db.session() as session:
        assert service.count_active(db=session) == 0

    skipped = run(settings, str(file), "--skip-bad-lines", "--source", "crm")
    assert skipped.exit_code == 0
    assert skipped.stderr.startswith("skipped line 3: ")
    assert skipped.stdout.strip() == f"imported 2 prompts from {file} (0 duplicates, 1 bad lines skipped)"
    with db.session() as session:
        crm, _total = service.list_(db=session, source="crm")
        assert sorted(p.tags[0] for p in crm) == ["farewell", "greeting"]


def test_empty_missing_and_misnamed_files(settings, db, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert run(settings, str(empty)).stderr.strip() == "error: The file has no prompts."
    missing = run(settings, str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    expected = f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory"
    assert missing.stderr.strip() == expected
    text = tmp_path / "prompts.txt"
    text.write_text('{"prompt": "detected as JSONL from its first character"}\n')
    assert run(settings, str(text)).stdout.startswith("imported 1 prompts")
    assert run(settings, str(text), "--format", "xml").stderr.strip() == (
        "error: Unknown prompt file format 'xml'; use jsonl or csv."
    )
