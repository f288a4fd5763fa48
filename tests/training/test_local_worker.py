"""The embedded deployment's worker: `prefloop worker` as a child process of the web server."""

from __future__ import annotations

import os
import signal
import time

from app.background import build_components
from app.training import service
from app.training.models import RoundStatus
from app.training.worker import LocalWorker


def _wait_for(predicate, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _status(db, round_id):
    with db.session() as session:
        return service.get_or_raise(db=session, round_id=round_id).status


def test_the_server_starts_a_worker_process_only_when_enabled(settings, db):
    settings.SAMPLER_ENABLED = settings.WEBHOOKS_ENABLED = False
    assert [type(c) for c in build_components(settings, db)] == [LocalWorker]
    settings.WORKER_ENABLED = False
    assert build_components(settings, db) == []


def test_the_local_worker_runs_rounds_in_another_process_is_restarted_and_stops(settings, db):
    settings.WORKER_POLL_S = 0.2
    worker = LocalWorker(settings)
    worker.RESTART_DELAY_S = 0.2
    worker.start()
    try:
        first_pid = worker._process.pid
        assert first_pid != os.getpid()
        with db.session() as session:  # no policy is registered: the round fails at its snapshot
            round_id = service.launch(db=session, settings=settings, requested_by=None, config_overrides={}).id
        _wait_for(lambda: _status(db, round_id) == RoundStatus.failed)  # it read this test's settings

        os.kill(first_pid, signal.SIGKILL)
        _wait_for(lambda: worker._process.pid != first_pid and worker._process.poll() is None)
    finally:
        worker.stop()
    assert worker._process.poll() is not None
