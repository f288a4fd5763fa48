"""A round's work directory, DATA_DIR/rounds/<id>/, as the app reads it: the trainer's status, metrics and log.

Its layout and file formats are the round contract's (trainer/contract.py). The trainer never touches
the database; the worker reads status.json and metrics.jsonl back into it (app/training/worker.py).
This module reads; it never blocks on a trainer that is mid-write.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from app.core.config import Settings
from trainer.contract import LOG_FILE, METRICS_FILE, OUTPUTS_DIR, STATUS_FILE, WORK_DIR, TrainerStatus, json_safe


def round_dir(settings: Settings, round_id: int) -> Path:
    return settings.DATA_DIR / "rounds" / str(round_id)


def read_status(workdir: Path) -> TrainerStatus | None:
    """The trainer's last status; None before it wrote one. It is replaced by rename, so never torn."""
    try:
        return TrainerStatus.model_validate(json_safe(json.loads((workdir / STATUS_FILE).read_text(encoding="utf-8"))))
    except FileNotFoundError:
        return None


class MetricsTail:
    """Reads a round's metrics.jsonl incrementally: each call returns the complete lines added since the last."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / METRICS_FILE
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


# Terminal control sequences: CSI (colours, cursor moves: ESC [ ... final byte) and OSC (titles,
# links: ESC ] ... BEL or ESC \), then any other two-byte escape.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")


def clean_log(text: str) -> str:
    """Log text as a reader wants it: no terminal escape codes, and of a line redrawn with carriage
    returns (a progress bar) only its last state."""
    lines = []
    for line in _ESCAPES.sub("", text).split("\n"):
        redraws = [part for part in line.split("\r") if part.strip()]
        lines.append(redraws[-1] if redraws else "")
    return "\n".join(lines)


def log_tail(workdir: Path, max_chars: int = 4000) -> str:
    """The end of trainer.log as clean text (clean_log), starting at a whole line: what the console shows."""
    try:
        with (workdir / LOG_FILE).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            # Read more than is kept: progress-bar redraws and escape codes shrink to little once cleaned.
            handle.seek(max(0, size - 4 * max_chars))
            raw = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    text = clean_log(raw)
    if len(raw) < size:  # the read began mid-line: drop that partial line
        text = text.partition("\n")[2]
    if len(text) > max_chars:
        text = text[-max_chars:].partition("\n")[2]
    return text


def remove_outputs(workdir: Path) -> None:
    """Drop trained models and checkpoints (after publishing, a rejection or a cancel); keep the record."""
    for name in (OUTPUTS_DIR, WORK_DIR):
        shutil.rmtree(workdir / name, ignore_errors=True)
