"""The training worker (`prefloop worker`): claims queued rounds and runs them one at a time.

Each pass of its loop: mark rounds whose worker went silent as failed, queue a round if the schedule
says so, claim the oldest queued round. For a claimed round:

    1. snapshot   write DATA_DIR/rounds/<id>/snapshot/ (skipped when resuming a round that has one)
    2. launch     the executor starts `python -m trainer.round --workdir DATA_DIR/rounds/<id>`
    3. reconcile  every tick: status.json and new metrics.jsonl lines into the database, which is also
                  the heartbeat; a cancel request kills the trainer and deletes the round's files
    4. finish     succeeded: publish reward model and policy (app/training/publish.py); rejected by a
                  gate or failed: record why. Outputs are deleted; a failed round keeps them to resume.

The worker imports no torch: training happens only in the executor's process. LocalWorker, at the end,
runs this loop as a child process of the web server for the embedded deployment.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from sqlalchemy.exc import OperationalError

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.errors import DomainError, InvalidState
from app.training import round_view, service
from app.training.executors import Executor, describe_exit
from app.training.models import RoundStatus
from app.training.publish import publish_round
from app.training.schemas import RoundConfig
from app.training.snapshot import SnapshotError, write_snapshot
from app.training.workdir import MetricsTail, log_tail, read_status, remove_outputs, round_dir
from trainer.contract import CONFIG_FILE, SNAPSHOT_DIR, STATUS_FILE, Stage, TrainerStatus

log = logging.getLogger("prefloop.worker")

# How long the trainer gets to checkpoint when the worker shuts down (PPO saves between updates).
STOP_GRACE_S = 30.0


class Worker:
    """Claims queued rounds and runs them one at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        executor: Executor,
        tick_s: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings, self.db, self.executor = settings, db, executor
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.tick_s = tick_s
        self.stop = stop or threading.Event()

    def run(self, *, once: bool = False) -> None:
        """Loop until stopped; with once, return after one pass (having run a round if one was queued)."""
        log.info("worker %s started", self.worker_id)
        self.settings.make_data_dir()  # owner-only, before round directories are created inside it
        while not self.stop.is_set():
            try:
                ran = self.step()
            except Exception:  # noqa: BLE001 - e.g. the database restarting: log, wait, try again
                if once:
                    raise
                log.exception("worker loop error; retrying in %.0f s", self.settings.WORKER_POLL_S)
                ran = None
            if once:
                return
            if ran is None:
                self.stop.wait(self.settings.WORKER_POLL_S)

    def step(self) -> int | None:
        """One pass of the loop; returns the id of the round it ran, if any."""
        now = utcnow()
        with self.db.write_session() as session:
            for stale in service.fail_stale(db=session, now=now, timeout_s=self.settings.TRAINING_HEARTBEAT_TIMEOUT_S):
                log.warning("round %d failed: %s", stale.id, stale.error)
            if (scheduled := service.maybe_schedule(db=session, settings=self.settings)) is not None:
                log.info("schedule queued round %d", scheduled.id)
        with self.db.session() as session:
            round_ = service.claim_next(db=session, worker_id=self.worker_id, executor=self.executor.name, now=now)
            round_id = round_.id if round_ is not None else None
        if round_id is not None:
            log.info("claimed round %d", round_id)
            self.run_round(round_id)
        return round_id

    def run_round(self, round_id: int) -> None:
        """Snapshot (unless resuming), launch, reconcile until the trainer exits, then record the outcome."""
        workdir = round_dir(self.settings, round_id)
        handle = None
        try:
            if not self._prepare(round_id, workdir):
                return
            # A resumed round's old status.json must not speak for a trainer that dies before writing its own.
            (workdir / STATUS_FILE).unlink(missing_ok=True)
            handle = self.executor.submit(round_id=round_id, workdir=workdir)
            with self.db.write_session() as session:
                service.record_launch(db=session, round_id=round_id, worker_id=self.worker_id, handle=handle)
            code = self._supervise(round_id, workdir, handle)
            handle = None  # the trainer has exited (or was stopped by _supervise)
            if code is not None:
                self._finish(round_id, workdir, code)
        except InvalidState as exc:
            # Taken away from this worker (declared stale, or changed by an admin): stop touching it.
            log.warning("round %d: %s", round_id, exc.msg)
        except Exception as exc:  # noqa: BLE001 - the boundary: any bug becomes a failed round, logged
            log.exception("round %d: worker error", round_id)
            self._record(round_id, RoundStatus.failed, f"Internal error in the worker: {type(exc).__name__}: {exc}")
        finally:
            if handle is not None:
                self.executor.cancel(handle, grace_s=0)

    def _prepare(self, round_id: int, workdir: Path) -> bool:
        """Write the snapshot unless a resumed round has one; False when the data cannot make a round."""
        with self.db.session() as session:  # only reads: annotators keep writing meanwhile
            round_ = service.get_or_raise(db=session, round_id=round_id)
            if Stage.snapshot in round_.completed_stages and (workdir / SNAPSHOT_DIR / CONFIG_FILE).is_file():
                log.info("round %d resumes after %s", round_id, round_.completed_stages[-1])
                return True
            # A new snapshot invalidates anything an earlier attempt trained from the old one.
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            failure: SnapshotError | None
            try:
                snapshot = write_snapshot(
                    db=session,
                    round_id=round_id,
                    out_dir=workdir / SNAPSHOT_DIR,
                    config=RoundConfig.model_validate(round_.config),
                )
            except SnapshotError as exc:
                failure = exc
            else:
                failure = None
        with self.db.write_session() as session:
            if failure is not None:
                service.fail_snapshot(
                    db=session,
                    round_id=round_id,
                    worker_id=self.worker_id,
                    error=str(failure),
                    max_judgment_id=failure.max_judgment_id,
                    now=utcnow(),
                )
                log.info("round %d failed at its snapshot: %s", round_id, failure)
                return False
            service.record_snapshot(
                db=session,
                round_id=round_id,
                worker_id=self.worker_id,
                max_judgment_id=snapshot.max_judgment_id,
                policy_version_id=snapshot.policy_version_id,
                counts=snapshot.counts,
            )
        return True

    def _supervise(self, round_id: int, workdir: Path, handle: str) -> int | None:
        """Reconcile until the trainer exits (its exit code) or is stopped here (None).

        A database that is briefly unreachable (a PostgreSQL restart) does not stop the training: the
        points read meanwhile wait in `pending` and the next successful tick records them.
        """
        tail, pending = MetricsTail(workdir), []
        while True:
            code = self.executor.poll(handle)  # before reading, so the last read sees the final files
            pending += tail.read_new()
            status = read_status(workdir)
            try:
                with self.db.write_session() as session:
                    round_ = service.record_progress(
                        db=session, round_id=round_id, worker_id=self.worker_id, now=utcnow(),
                        status=status.model_dump(exclude_unset=True) if status else {}, points=pending,
                        log_tail=log_tail(workdir),
                    )  # fmt: skip
                    cancel = round_.cancel_requested
                    stage = round_view.stage_at(
                        status=round_.status, stage=round_.stage, completed_stages=round_.completed_stages
                    )
            except OperationalError as exc:
                log.warning("round %d: database unreachable, retrying: %s", round_id, exc)
                if self.stop.is_set():  # it cannot be handed back; it fails as stale, and a retry resumes it
                    self.executor.cancel(handle, grace_s=STOP_GRACE_S)
                    return None
                self.stop.wait(self.tick_s)
                continue
            pending = []
            if code is not None:
                return code
            if cancel:
                self.executor.cancel(handle, grace_s=0)
                shutil.rmtree(workdir, ignore_errors=True)
                self._record(round_id, RoundStatus.cancelled, f"Cancelled by an admin during stage {stage}.")
                return None
            if self.stop.is_set():
                self.executor.cancel(handle, grace_s=STOP_GRACE_S)
                with self.db.write_session() as session:
                    service.requeue(
                        db=session,
                        round_id=round_id,
                        worker_id=self.worker_id,
                        reason=f"Worker {self.worker_id} shut down during stage {stage}; "
                        "the round resumes when a worker claims it again.",
                    )
                return None
            self.stop.wait(self.tick_s)

    def _finish(self, round_id: int, workdir: Path, code: int) -> None:
        status = read_status(workdir) or TrainerStatus(state="failed")
        if code == 0 and status.state == "rejected":
            remove_outputs(workdir)
            self._record(round_id, RoundStatus.rejected, "Rejected by a gate: " + "; ".join(status.rejected_reasons))
        elif code == 0 and status.state == "succeeded":
            self._publish(round_id, workdir, status.results)
        else:
            reason = status.error or "the trainer stopped without saying why; see its log"
            self._record(
                round_id,
                RoundStatus.failed,
                f"Training failed ({describe_exit(code)}): {reason}. Nothing was published; "
                "retry to resume from the last completed stage.",
            )

    def _publish(self, round_id: int, workdir: Path, results: dict) -> None:
        try:
            with self.db.write_session() as session:
                # Locks the row: no other worker can declare the round stale while it is published.
                round_ = service.heartbeat(db=session, round_id=round_id, worker_id=self.worker_id, now=utcnow())
                reward_model, policy = publish_round(
                    db=session,
                    settings=self.settings,
                    round_=round_,
                    workdir=workdir,
                    results=results,
                )
                service.finish(
                    db=session,
                    round_id=round_id,
                    worker_id=self.worker_id,
                    status=RoundStatus.succeeded,
                    now=utcnow(),
                    reward_model_id=reward_model.id,
                    policy_version_id=policy.id,
                )
                log.info("round %d published policy version %d (%s)", round_id, policy.number, policy.status.value)
        except DomainError as exc:  # an incomplete output directory, a version number taken meanwhile
            self._record(round_id, RoundStatus.failed, f"Publishing failed: {exc.msg}")
            return
        remove_outputs(workdir)

    def _record(self, round_id: int, status: RoundStatus, error: str) -> None:
        with self.db.write_session() as session:
            service.finish(
                db=session,
                round_id=round_id,
                worker_id=self.worker_id,
                status=status,
                now=utcnow(),
                error=error,
            )
        log.info("round %d %s: %s", round_id, status.value, error)


def exit_with_parent(parent_pid: int) -> None:
    """Die with the process that started us (Linux prctl PR_SET_PDEATHSIG), as the trainer does: the web
    server's own worker must not outlive it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # it died before the prctl took effect
        sys.exit(1)


class LocalWorker:
    """Background component of the embedded deployment: `prefloop worker` as a child process, so torch
    training never runs in the web process. It is restarted if it dies, and stopped with the server."""

    name = "local training worker"
    RESTART_DELAY_S = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The child reads the same settings from the environment, whatever way this process got them.
        env = os.environ | {f"PREFLOOP_{k}": str(v) for k, v in self.settings.model_dump().items() if v is not None}
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "worker",
                "--parent-pid",
                str(os.getpid()),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._process = self._spawn()
        self._thread = threading.Thread(
            target=self._watch, args=(self._process,), name="local-worker-watch", daemon=True
        )
        self._thread.start()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        while not self._stopping.is_set():
            code = process.wait()
            if self._stopping.wait(self.RESTART_DELAY_S):
                return
            log.error("the local training worker exited (%s); restarting it", describe_exit(code))
            self._process = process = self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # the worker requeues its round after the trainer checkpoints
            try:
                self._process.wait(timeout=STOP_GRACE_S + 10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
