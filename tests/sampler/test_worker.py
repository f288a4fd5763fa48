"""The sampler loop with the real tiny policy: filling the pool, cross-version pairs, switching versions
while it runs, surviving a version that fails to load, and running as its own process."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.comparisons.models import Comparison, ComparisonStatus, Completion
from app.main import create_app
from app.policies import registry
from app.policies import service as policy_service
from app.policies.models import PolicyStatus
from app.rollout import service as rollout_service
from app.rollout.models import RolloutStatus
from app.sampler import service
from app.sampler.worker import SamplerWorker
from tests.factories import (
    make_comparison,
    make_judgment,
    make_prompt,
    make_user,
    publish_policy_version,
    start_rollout,
)

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ["owls", "pasta", "cycling", "the color blue", "lions", "Paris", "tea", "chess", "jazz", "rain"]


def tuned(settings, **changes):
    base = {
        "SAMPLER_LOW_WATER": 6,
        "SAMPLER_BATCH_PROMPTS": 4,
        "SAMPLER_MAX_NEW_TOKENS": 16,
        "SAMPLER_CROSS_VERSION_FRACTION": 0.0,
        "SAMPLER_POLL_S": 0.05,
        "QUEUE_OVERLAP_SHARE": 0.0,
    }
    return settings.model_copy(update={**base, **changes})


def topics(db, n: int | None = None) -> list[int]:
    return [make_prompt(db, text=f"Tell me about {t}.") for t in TOPICS[:n]]


def pairs(db, status=None) -> list[tuple[Comparison, Completion, Completion]]:
    with db.session() as session:
        query = select(Comparison).order_by(Comparison.id)
        if status is not None:
            query = query.where(Comparison.status == status)
        return [(c, c.completion_a, c.completion_b) for c in session.scalars(query)]


def wait_for(predicate, timeout_s=90.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_fills_the_pool_with_pairs_of_the_active_version(settings, db, active_policy):
    prompt_ids = topics(db)
    worker = SamplerWorker(tuned(settings, QUEUE_OVERLAP_SHARE=1.0, SAMPLER_TEMPERATURE=0.7, SAMPLER_TOP_P=0.9), db)
    assert worker.run_once() == 6  # a batch of 4, then 2 more reach the low-water mark
    assert worker.serving.number == 1
    stored = pairs(db)
    assert len(stored) == 6 and len({c.prompt_id for c, _, _ in stored}) == 6
    for comparison, a, b in stored:
        assert comparison.status is ComparisonStatus.ready and comparison.overlap_target == 2
        for completion in (a, b):
            assert completion.policy_version_id == active_policy
            assert completion.prompt_id == comparison.prompt_id
            assert completion.finish_reason in ("eos", "length") and 1 <= completion.token_count <= 16
            assert completion.sampling["temperature"] == 0.7 and completion.sampling["top_p"] == 0.9
            assert completion.sampling["max_new_tokens"] == 16 and completion.sampling["top_k"] == 0
    assert worker.run_once() == 0, "a full pool is left alone"

    # Annotators finish five pairs: the refill tops the pool up, the four prompts never sampled first.
    with db.session() as session:
        for comparison in session.scalars(select(Comparison).order_by(Comparison.id).limit(5)):
            comparison.status, comparison.judgment_count = ComparisonStatus.completed, 1
    assert worker.run_once() == 5
    refill = [c.prompt_id for c, _, _ in pairs(db)[6:]]
    assert set(refill[:4]) == set(prompt_ids) - {c.prompt_id for c, _, _ in stored}
    assert refill[4] == stored[5][0].prompt_id, "then the prompt whose pair is still unjudged"


def test_cross_version_pairs_pit_the_active_version_against_the_previous(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)
    topics(db)
    worker = SamplerWorker(tuned(settings, SAMPLER_CROSS_VERSION_FRACTION=1.0, SAMPLER_LOW_WATER=8), db)
    assert worker.run_once() == 8
    assert (worker.serving.number, worker.baseline.number) == (2, 1)
    versions = [(a.policy_version_id, b.policy_version_id) for _, a, b in pairs(db)]
    assert all(set(pair) == {active_policy, v2} for pair in versions)
    assert len(set(versions)) == 2, "which version is 'a' is drawn, not fixed"


def test_a_running_rollout_gets_its_share_of_candidate_vs_parent_pairs(settings, db, tiny_policy_dir, active_policy):
    """The candidate is loaded beside the active version, its parent, and a rollout of share 1 makes
    every new pair one of each; the baseline's cross-version pairs wait their turn."""
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    start_rollout(settings, db, candidate_id=v2, share=1.0)
    topics(db)
    worker = SamplerWorker(tuned(settings, SAMPLER_LOW_WATER=8), db)
    assert worker.run_once() == 8
    assert (worker.serving.number, worker.candidate.number, worker.rollout_share) == (1, 2, 1.0)
    versions = [(a.policy_version_id, b.policy_version_id) for _, a, b in pairs(db)]
    assert all(set(pair) == {active_policy, v2} for pair in versions)
    assert len(set(versions)) == 2, "which version is 'a' is drawn, not fixed"
    worker.report()
    with db.session() as session:
        assert service.load_status(db=session)[0]["rollout_candidate"] == 2


def test_a_rollout_decided_by_people_is_served_at_the_next_cycle(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    rollout_id = start_rollout(settings, db, candidate_id=v2, share=1.0)
    annotator = make_user(db, "judge")
    for _ in range(20):  # a clean sweep: the lower bound of the rating difference is well above 0
        comparison = make_comparison(db, version_a_id=v2, version_b_id=active_policy)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice="a")
    topics(db, 2)
    worker = SamplerWorker(tuned(settings), db)
    worker.run_once()
    assert worker.serving.number == 2 and worker.candidate is None
    with db.session() as session:
        assert rollout_service.get_or_raise(db=session, rollout_id=rollout_id).status is RolloutStatus.activated


def test_without_cross_version_pairs_only_the_active_version_samples(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)
    topics(db)
    worker = SamplerWorker(tuned(settings), db)
    worker.run_once()
    assert worker.baseline is None and set(worker._loaded) == {v2}
    assert {(a.policy_version_id, b.policy_version_id) for _, a, b in pairs(db)} == {(v2, v2)}


def test_switches_version_while_running_in_the_web_app(settings, tiny_policy_dir, active_policy, admin_token):
    running = tuned(settings, RUN_BACKGROUND=True, WORKER_ENABLED=False, WEBHOOKS_ENABLED=False, SAMPLER_LOW_WATER=4)
    app = create_app(running)
    db = app.state.db
    topics(db)
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with TestClient(app) as client:
        [sampler] = [c for c in app.state.components if c.name == "sampler"]
        wait_for(lambda: len(pairs(db, ComparisonStatus.ready)) >= 4, what="the first fill")
        started = pairs(db, ComparisonStatus.ready)[0][0].id
        # one old pair already has a judgment: it stays to reach its overlap (a write session: the
        # sampler thread commits beside this read-then-write)
        with db.write_session() as session:
            session.get(Comparison, started).judgment_count = 1

        response = client.post("/api/v1/policies/2/activate", headers=admin_token)
        assert response.status_code == 200 and response.json()["status"] == "active"

        wait_for(lambda: sampler.serving.number == 2, what="the switch")
        # Version 2 fills its own pool to the low-water mark; then the three unjudged old pairs retire.
        wait_for(
            lambda: sum(a.policy_version_id == v2 for _, a, _ in pairs(db, ComparisonStatus.ready)) >= 4,
            what="a refill with version 2",
        )
        wait_for(lambda: len(pairs(db, ComparisonStatus.retired)) == 3, what="the old pairs to retire")
    assert not sampler._thread.is_alive(), "the app's shutdown stops the sampler"
    by_status: dict[str, set[int]] = {}
    for comparison, a, _b in pairs(db):
        by_status.setdefault(comparison.status.value, set()).add(a.policy_version_id)
    assert by_status["retired"] == {active_policy}, "unjudged old pairs are retired, not deleted"
    ready_old = [c.id for c, a, _ in pairs(db, ComparisonStatus.ready) if a.policy_version_id == active_policy]
    assert ready_old == [started]


def test_after_an_activation_the_old_pairs_serve_until_the_new_version_refilled_the_pool(
    settings, db, tiny_policy_dir, active_policy
):
    topics(db)
    worker = SamplerWorker(tuned(settings), db)
    assert worker.run_once() == 6
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)

    # Watch the pool at every generation batch of the refill: the old pairs are still there to judge.
    seen: list[tuple[int, int]] = []  # (ready pairs in all, ready pairs with version 2) before each batch
    fill = worker._fill

    def watched_fill(serving, n_prompts):
        with db.session() as session:
            seen.append((service.pool_size(db=session), service.pool_size(db=session, version_id=v2)))
        return fill(serving, n_prompts)

    worker._fill = watched_fill
    assert worker.run_once() == 6, "version 2 gets a full pool of its own"
    assert seen == [(6, 0), (10, 4)], "the queue never ran dry while version 2's pairs were generated"
    ready = pairs(db, ComparisonStatus.ready)
    assert len(ready) == 6 and {a.policy_version_id for _, a, _ in ready} == {v2}
    assert len(pairs(db, ComparisonStatus.retired)) == 6, "then the old pairs retire"
    assert worker.run_once() == 0 and len(pairs(db, ComparisonStatus.retired)) == 6, "once"


def test_a_refill_stopped_midway_retires_nothing(settings, db, tiny_policy_dir, active_policy):
    topics(db)
    worker = SamplerWorker(tuned(settings), db)
    worker.run_once()
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)
    fill = worker._fill

    def fill_then_stop(serving, n_prompts):
        worker._stop.set()  # the server shuts down during the first batch
        return fill(serving, n_prompts)

    worker._fill = fill_then_stop
    worker.run_once()
    assert pairs(db, ComparisonStatus.retired) == [], "the old pairs serve on until the pool is refilled"
    worker._fill, worker._stop = fill, type(worker._stop)()
    worker.run_once()
    assert len(pairs(db, ComparisonStatus.retired)) == 6


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    settings, db, client, admin_token, tiny_policy_dir, active_policy, tmp_path
):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_policy_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "n_layer": 1}))  # passes the file checks
    v2 = publish_policy_version(
        settings, db, source_dir=broken, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    topics(db)
    worker = SamplerWorker(tuned(settings, SAMPLER_RETRY_LOAD_S=3600), db)
    worker.run_once()
    pool_before = [c.id for c, _, _ in pairs(db, ComparisonStatus.ready)]

    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)
    assert worker.run_once() == 0
    assert worker.serving.number == 1
    assert worker.last_error.startswith("policy version 2 failed to load: the weights in ")
    assert "do not match its config.json (unexpected keys: transformer.h.1." in worker.last_error
    assert [c.id for c, _, _ in pairs(db, ComparisonStatus.ready)] == pool_before, "the pool is intact"
    worker.report()
    status = client.get("/api/v1/sampler", headers=admin_token).json()
    assert (status["active_version"], status["serving_version"], status["pool_size"]) == (2, 1, 6)
    assert status["last_error"] == worker.last_error and status["reported_at"]
    assert status["pid"] == os.getpid()

    with db.session() as session:  # the pool drains; version 1 keeps refilling it
        for comparison in session.scalars(select(Comparison).limit(3)):
            comparison.status = ComparisonStatus.completed
    assert worker.run_once() == 3
    assert {a.policy_version_id for _, a, _ in pairs(db)} == {active_policy}

    # Fixed on disk: after the retry wait the sampler loads it and switches.
    (registry.version_dir(settings.registry_dir, "policy", 2) / "config.json").write_text(json.dumps(config))
    worker.settings = worker.settings.model_copy(update={"SAMPLER_RETRY_LOAD_S": 0.01})
    time.sleep(0.02)
    worker.run_once()
    assert worker.serving.number == 2 and worker.last_error == ""
    worker.report()
    status = client.get("/api/v1/sampler", headers=admin_token).json()
    assert (status["serving_version"], status["last_error"]) == (2, "")


def test_prompts_too_long_for_the_context_are_left_out(settings, db, active_policy, caplog):
    long_prompt = make_prompt(db, text=" ".join(["word"] * 400))
    worker = SamplerWorker(tuned(settings, SAMPLER_LOW_WATER=2), db)
    assert worker.run_once() == 0
    assert long_prompt in worker._too_long
    assert f"prompt {long_prompt} (" in caplog.text
    assert "does not fit the 256-token context of version 1" in caplog.text
    topics(db, 2)
    assert worker.run_once() == 2
    assert long_prompt not in {c.prompt_id for c, _, _ in pairs(db)}


def test_sampler_status_before_any_sampler_ran(client, admin_token, annotator_token, active_policy):
    status = client.get("/api/v1/sampler", headers=admin_token)
    assert status.status_code == 200
    assert status.json() == {
        "pool_size": 0,
        "active_version": 1,
        "serving_version": None,
        "baseline_version": None,
        "rollout_candidate": None,
        "last_error": "",
        "low_water": None,
        "host": None,
        "pid": None,
        "reported_at": None,
    }
    denied = client.get("/api/v1/sampler", headers=annotator_token)
    assert denied.status_code == 403 and denied.json()["detail"][0]["msg"] == "Admin role required."


def test_nothing_to_do_without_prompts(settings, db, active_policy, caplog):
    caplog.set_level(logging.INFO, logger="prefloop.sampler")
    worker = SamplerWorker(tuned(settings), db)
    assert worker.run_once() == 0 and worker.serving.number == 1
    assert "no active prompts to sample for" in caplog.text


def test_one_sampler_per_data_directory(settings, db, active_policy):
    topics(db)
    first, second = SamplerWorker(tuned(settings), db), SamplerWorker(tuned(settings), db)
    first.start()
    wait_for(lambda: first.serving is not None, what="the first sampler")
    second.start()
    time.sleep(0.5)
    assert second.serving is None and second._last_note.startswith("another sampler holds")
    first.stop()
    wait_for(lambda: second.serving is not None, what="the second sampler to take over")
    second.stop()
    assert not first._thread.is_alive() and not second._thread.is_alive()


def cli_env(settings) -> dict[str, str]:
    return {
        "PREFLOOP_DATA_DIR": str(settings.DATA_DIR),
        "PREFLOOP_DATABASE_URL": settings.database_url,
        "PREFLOOP_SAMPLER_LOW_WATER": "4",
        "PREFLOOP_SAMPLER_MAX_NEW_TOKENS": "16",
        "PREFLOOP_SAMPLER_POLL_S": "0.1",
    }


def test_sampler_command_once(settings, db, active_policy):
    runner = CliRunner()
    result = runner.invoke(cli, ["sampler", "--once"], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "created 0 comparisons with policy version 1"
    topics(db)
    result = runner.invoke(cli, ["sampler", "--once"], env=cli_env(settings))
    assert result.stdout.strip() == "created 4 comparisons with policy version 1"


def test_sampler_command_without_a_policy_fails(settings, db):
    result = CliRunner().invoke(cli, ["sampler", "--once"], env=cli_env(settings))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no policy to sample with: no version is active"


# Process-level and wiring tests do not depend on the database engine: SQLite only, to save time.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.slow
@SQLITE_ONLY
def test_sampler_process_fills_the_pool_and_stops_on_sigterm(settings, db, active_policy):
    topics(db)
    env = {**os.environ, **cli_env(settings), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "sampler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: len(pairs(db, ComparisonStatus.ready)) >= 4 or child.poll() is not None,
            what="the sampler process to fill the pool",
        )
        assert child.poll() is None, child.stdout.read()
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, output
    assert "sampler now serving policy version 1" in output
    with db.session() as session:
        assert service.pool_size(db=session) >= 4


@SQLITE_ONLY
@pytest.mark.parametrize("enabled", [True, False])
def test_the_web_app_runs_the_sampler_component_when_enabled(settings, enabled):
    app = create_app(
        settings.model_copy(
            update={
                "RUN_BACKGROUND": True,
                "SAMPLER_ENABLED": enabled,
                "WEBHOOKS_ENABLED": False,
                "WORKER_ENABLED": False,
            }
        )
    )
    assert ("sampler" in [c.name for c in app.state.components]) is enabled
    app.state.db.dispose()


@SQLITE_ONLY
def test_the_web_process_does_not_import_torch(settings):
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from app.core.config import Settings\n"
        "from app.main import create_app\n"
        f"settings = Settings(DATA_DIR={str(settings.DATA_DIR)!r}, DATABASE_URL={settings.database_url!r},"
        " SECRET_KEY='k', RUN_BACKGROUND=True, SAMPLER_ENABLED=False, WORKER_ENABLED=False, _env_file=None)\n"
        "with TestClient(create_app(settings)) as client:\n"
        "    assert client.get('/api/v1/policies').status_code == 401\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


@SQLITE_ONLY
def test_a_failing_cycle_is_reported_and_the_loop_goes_on(settings, db, active_policy, monkeypatch):
    def reported_error() -> str | None:
        with db.session() as session:
            status = service.load_status(db=session)
        return status and status[0]["last_error"]

    topics(db)
    worker = SamplerWorker(tuned(settings), db)
    real_fill = worker._fill
    monkeypatch.setattr(worker, "_fill", lambda serving, n: (_ for _ in ()).throw(RuntimeError("disk full")))
    worker.start()
    try:
        wait_for(lambda: worker.last_error == "sampler cycle failed: disk full", what="the failure")
        # The worker reports its status after it notes the error: wait for the report, not just the note.
        wait_for(lambda: reported_error() == "sampler cycle failed: disk full", what="the failure's report")
        monkeypatch.setattr(worker, "_fill", real_fill)
        wait_for(lambda: worker.last_error == "" and len(pairs(db)) >= 6, what="the recovery")
    finally:
        worker.stop()
