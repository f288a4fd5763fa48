"""A round's work directory, DATA_DIR/rounds/<id>/: the files the app and `trainer.round` exchange.

    snapshot/pairs.jsonl     written by the app (app/training/snapshot.py): the training data
    snapshot/prompts.jsonl   ... prompts for PPO rollouts and the held-out evaluation
    snapshot/config.json     ... the resolved round configuration and the model directories
    snapshot/manifest.json   ... the snapshot bound (highest judgment id) and counts
    status.json              written by the trainer, replaced atomically: state, stage, step, total_steps,
                             completed_stages, latest_metrics, results, rejected_reasons, error
    metrics.jsonl            written by the trainer: {"stage", "step", "values"} per logged point
    trainer.log              the trainer's stdout and stderr (the executor opens it)
    outputs/reward_model/    written by the trainer: the models the worker publishes when it succeeds
    outputs/policy/
    work/                    written by the trainer: PPO checkpoints and stage markers (for resume)

The trainer never touches the database; the worker reads status.json and metrics.jsonl back into it
(app/training/worker.py). This module reads; it never blocks on a trainer that is mid-write.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from app.core.config import Settings

SNAPSHOT = "snapshot"
STATUS = "status.json"
METRICS = "metrics.jsonl"
LOG = "trainer.log"
OUTPUTS = "outputs"
WORK = "work"


def round_dir(settings: Settings, round_id: int) -> Path:
    return settings.DATA_DIR / "rounds" / str(round_id)


def read_status(workdir: Path) -> dict:
    """The trainer's last status; {} before it wrote one. It is replaced by rename, so never torn."""
    try:
        status = json.loads((workdir / STATUS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return json_safe(status) if isinstance(status, dict) else {}


class MetricsTail:
    """Reads metrics.jsonl incrementally: each call returns the complete lines added since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        # A line without its newline is still being written: leave it for the next call.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        points = []
        for line in complete.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed trainer; the resumed run logs that step again
            if isinstance(row, dict) and isinstance(row.get("step"), int) and isinstance(row.get("values"), dict):
                points.append(
                    {
                        "stage": str(row.get("stage", "")),
                        "step": row["step"],
                        "values": json_safe(row["values"]),
                    }
                )
        return points


def log_tail(workdir: Path, max_chars: int = 4000) -> str:
    """The end of trainer.log (what the console shows under a failed round)."""
    try:
        with (workdir / LOG).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_chars))
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def remove_outputs(workdir: Path) -> None:
    """Drop trained models and checkpoints (after publishing, a rejection or a cancel); keep the record."""
    for name in (OUTPUTS, WORK):
        shutil.rmtree(workdir / name, ignore_errors=True)


def json_safe(value):
    """NaN and infinities as strings: PostgreSQL's JSON type refuses the bare NaN that Python writes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
