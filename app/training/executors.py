"""Where a round's trainer runs. An executor only launches `python -m trainer.round --workdir DIR`,
reports whether it is still running, and stops it; progress travels through files in DIR.

The seam for a cluster: a RayJobsExecutor would implement the same three methods with Ray's job
submission client (submit_job(entrypoint="python -m trainer.round --workdir DIR",
submission_id=f"prefloop-round-{id}"), get_job_status mapped to an exit code, stop_job), with DIR on a
volume both the worker and the job see. The worker needs nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from trainer.contract import LOG_FILE


class Executor(Protocol):
    name: str

    def submit(self, *, round_id: int, workdir: Path) -> str:
        """Start the trainer for the round in `workdir`; returns a handle to poll and cancel it by."""

    def poll(self, handle: str) -> int | None:
        """None while it runs, else its exit code (negative: killed by that signal)."""

    def cancel(self, handle: str, *, grace_s: float) -> int:
        """Stop it (SIGTERM, then SIGKILL after grace_s) and return its exit code."""


class LocalExecutor:
    """The trainer as a child process of the worker, in its own process group (so a cancel also stops
    anything it started), its output appended to DIR/trainer.log. It gets the worker's pid and exits
    if the worker dies, so an orphaned trainer never races the retry of its round."""

    name = "local"

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "trainer.round"]
        self._processes: dict[str, subprocess.Popen] = {}

    def submit(self, *, round_id: int, workdir: Path) -> str:
        with (workdir / LOG_FILE).open("ab") as log:
            process = subprocess.Popen(
                [*self.command, "--workdir", str(workdir), "--parent-pid", str(os.getpid())],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},
            )
        handle = str(process.pid)
        self._processes[handle] = process
        return handle

    def poll(self, handle: str) -> int | None:
        return self._processes[handle].poll()

    def cancel(self, handle: str, *, grace_s: float) -> int:
        process = self._processes[handle]
        if process.poll() is None:
            self._signal_group(process, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
            deadline = time.monotonic() + grace_s
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        if process.poll() is None:
            self._signal_group(process, signal.SIGKILL)
        code = process.wait()
        # The leader is gone; anything it started in its group goes too.
        self._signal_group(process, signal.SIGKILL)
        del self._processes[handle]
        return code

    @staticmethod
    def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass  # the whole group has already exited


def describe_exit(code: int) -> str:
    """An exit code in words, naming the usual culprit of a SIGKILL nobody asked for."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGKILL:
        return (
            f"killed by {name}; when nobody cancelled it this is usually the out-of-memory killer: "
            "lower ppo.batch_size / reward.batch_size, ppo.response_length or the model size"
        )
    return f"killed by {name}"
