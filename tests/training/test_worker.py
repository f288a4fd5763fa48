"""The worker with a scripted trainer process: reconciliation, publishing, gates, failures, cancel, stop."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from app.core.db import utcnow
from app.policies.models import PolicyVersion, RewardModel
from app.rollout import service as rollout_service
from app.training import service
from app.training.models import RoundMetric, RoundStatus, TrainingRound
from app.training.workdir import round_dir
from tests.training.conftest import fake_worker


def _launch(db, settings, **overrides) -> int:
    with db.session() as session:
        return service.launch(db=session, settings=settings, requested_by=None, config_overrides=overrides).id


def _round(db, round_id) -> TrainingRound:
    with db.session() as session:
        return service.get_or_raise(db=session, round_id=round_id)


def _versions(db) -> list[tuple[int, str]]:
    with db.session() as session:
        return [(v.number, v.status.value) for v in session.query(PolicyVersion).order_by(PolicyVersion.number)]


def _registry(settings, kind="policy") -> list[str]:
    root = settings.registry_dir / kind
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _wait_for(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_succeeded_round_is_published_recorded_and_activated(db, settings, trained_data, fake_policy):
    round_id = _launch(db, settings)
    assert fake_worker(settings, db, {}).step() == round_id

    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded, round_.error
    assert round_.completed_stages == ["snapshot", "reward_model", "ppo", "evaluate", "publish"]
    assert round_.snapshot_max_judgment_id == 180 and round_.base_policy_version_id == fake_policy.id
    assert _versions(db) == [(1, "archived"), (2, "active")]
    assert _registry(settings) == ["v0001", "v0002"] and _registry(settings, "reward") == ["v0001"]
    with db.session() as session:
        policy = session.get(PolicyVersion, round_.policy_version_id)
        reward = session.get(RewardModel, round_.reward_model_id)
        assert (policy.number, policy.parent_id, policy.source) == (2, fake_policy.id, f"round {round_id}")
        assert policy.metrics["eval/score_new"] == 0.4 and policy.metrics["reward_model"] == 1
        assert (reward.number, reward.score_mean, reward.score_std) == (1, 0.5, 2.0)
    manifest = json.loads((settings.registry_dir / "policy" / "v0002" / "manifest.json").read_text())
    assert manifest["round_id"] == round_id and manifest["parent_version"] == 1
    assert manifest["data_snapshot"]["max_judgment_id"] == 180
    workdir = round_dir(settings, round_id)
    assert not (workdir / "outputs").exists()  # published copies live in the registry
    assert (workdir / "snapshot" / "pairs.jsonl").exists() and (workdir / "status.json").exists()


def test_progress_metrics_and_log_reach_the_database(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {}).step()
    round_ = _round(db, round_id)
    assert (round_.stage, round_.step, round_.total_steps) == ("publish", 2, 2)
    assert round_.latest_metrics == {"objective/kl": "nan"}  # PostgreSQL JSON cannot hold a bare NaN
    assert "fake trainer starting" in round_.log_tail
    # 180 judgments: the derived held-out share is 30 %, 39 pairs here
    assert round_.results["evaluate"]["eval/kl"] == 0.3 and round_.results["snapshot"]["eval_pairs"] == 39
    with db.session() as session:
        points = session.query(RoundMetric).filter_by(round_id=round_id).order_by(RoundMetric.id).all()
        assert [(p.stage, p.step) for p in points] == [
            ("reward_model", 1),
            ("reward_model", 2),
            ("ppo", 1),
            ("ppo", 2),
        ]
    args = json.loads((round_dir(settings, round_id) / "fake_args.json").read_text())
    assert args["parent_pid"] == os.getpid() and args["cwd"] == str(round_dir(settings, round_id))


def test_progress_is_visible_while_the_round_runs(db, settings, trained_data):
    round_id = _launch(db, settings)
    script = {"points": [["ppo", s, 50, {"objective/kl": s}] for s in range(1, 51)], "sleep_s": 0.1}
    thread = threading.Thread(target=fake_worker(settings, db, script).step)
    thread.start()
    _wait_for(lambda: _round(db, round_id).step >= 5)
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.running and round_.stage == "ppo" and round_.step < 50
    thread.join()
    assert _round(db, round_id).status == RoundStatus.succeeded


def test_with_activation_off_the_new_version_is_a_candidate(db, settings, trained_data):
    round_id = _launch(db, settings, activate=False)
    fake_worker(settings, db, {}).step()
    assert _round(db, round_id).status == RoundStatus.succeeded
    assert _versions(db) == [(1, "active"), (2, "candidate")]


def test_a_regression_is_published_as_a_candidate_and_not_activated(db, settings, trained_data):
    """With default settings, a round whose own evaluation says the new policy scores worse than its
    parent succeeds and publishes a candidate, with the reason, instead of going live."""
    round_id = _launch(db, settings)
    worse = {"eval/score_gain": -0.017, "eval/score_gain_low": -0.05, "eval/score_gain_high": -0.002}
    fake_worker(settings, db, {"evaluate": worse}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded and round_.error == ""
    assert _versions(db) == [(1, "active"), (2, "candidate")]
    verdict = round_.results["activation"]
    assert verdict["decision"] == "candidate" and verdict["score_gain_low"] == -0.05
    assert "scores worse than its parent" in verdict["reason"]


def test_a_gain_whose_interval_reaches_zero_is_not_activated(db, settings, trained_data):
    round_id = _launch(db, settings)
    unsure = {"eval/score_gain": 0.05, "eval/score_gain_low": -0.01, "eval/score_gain_high": 0.11}
    fake_worker(settings, db, {"evaluate": unsure}).step()
    assert _versions(db) == [(1, "active"), (2, "candidate")]
    assert "does not beat its parent with confidence" in _round(db, round_id).results["activation"]["reason"]


def test_a_confident_gain_is_activated_with_its_evidence(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {}).step()
    verdict = _round(db, round_id).results["activation"]
    assert _versions(db) == [(1, "archived"), (2, "active")]
    assert verdict["decision"] == "activated"
    assert (verdict["score_gain"], verdict["score_gain_low"], verdict["score_gain_high"]) == (0.3, 0.1, 0.5)
    assert verdict["reason"].startswith("Activated automatically: held-out score gain +0.300 (95% interval +0.100")


def test_with_a_rollout_share_people_decide_instead_of_the_held_out_rule(db, settings, trained_data, fake_policy):
    round_id = _launch(db, settings, rollout_share=0.25)
    fake_worker(settings, db, {}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded
    assert _versions(db) == [(1, "active"), (2, "candidate")]
    assert round_.results["activation"]["decision"] == "rollout"
    with db.session() as session:
        rollout = rollout_service.running(db=session)
        assert (rollout.candidate_id, rollout.parent_id) == (round_.policy_version_id, fake_policy.id)
        assert rollout.share == 0.25 and rollout.max_battles == settings.TRAINING_ROLLOUT_MAX_BATTLES


def test_a_gate_rejection_publishes_nothing(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"end": "rejected", "rejected_reasons": ["KL is 12, the gate is <= 8"]}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.rejected
    assert round_.error == "Rejected by a gate: KL is 12, the gate is <= 8"
    assert _versions(db) == [(1, "active")] and _registry(settings) == ["v0001"] and _registry(settings, "reward") == []
    assert not (round_dir(settings, round_id) / "outputs").exists()


def test_a_failed_trainer_fails_the_round_with_its_reason_and_keeps_its_work(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"end": "failed"}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.failed
    assert round_.error.startswith("Training failed (exit code 1): ppo: scripted failure. Nothing was published")
    assert "fake trainer failed" in round_.log_tail
    assert _versions(db) == [(1, "active")]
    assert (round_dir(settings, round_id) / "snapshot").exists()  # a retry resumes from it


def test_a_killed_trainer_names_the_out_of_memory_killer(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"end": "sigkill"}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.failed
    assert "killed by SIGKILL" in round_.error and "out-of-memory killer" in round_.error
    assert _versions(db) == [(1, "active")]


def test_bad_data_fails_the_round_before_any_process_starts(db, settings, fake_policy):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {}).step()
    round_ = _round(db, round_id)
    assert (round_.status, round_.error) == (
        RoundStatus.failed,
        "No judgments yet: annotate some pairs before training.",
    )
    assert round_.snapshot_max_judgment_id == 0 and round_.handle == ""
    assert not (round_dir(settings, round_id) / "snapshot").exists()


def test_cancel_kills_the_trainer_deletes_its_files_and_publishes_nothing(db, settings, trained_data):
    round_id = _launch(db, settings)
    thread = threading.Thread(target=fake_worker(settings, db, {"end": "hang"}).step)
    thread.start()
    workdir = round_dir(settings, round_id)
    _wait_for(lambda: _round(db, round_id).stage == "ppo")
    pid = json.loads((workdir / "fake_args.json").read_text())["pid"]
    with db.write_session() as session:
        service.request_cancel(db=session, round_id=round_id, now=utcnow())
    thread.join(timeout=30)
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.cancelled and round_.error == "Cancelled by an admin during stage ppo."
    # What it did before the cancel stays on record; the stage it was in shows as stopped.
    assert round_.completed_stages[0] == "snapshot" and "ppo" not in round_.completed_stages
    with db.session() as session:
        read = service.to_read(db=session, round_=service.get_or_raise(db=session, round_id=round_id))
    assert read.stage_states["ppo"] == "stopped" and read.stages_done == len(round_.completed_stages)
    assert not workdir.exists()
    assert not _process_exists(pid)
    assert _versions(db) == [(1, "active")] and _registry(settings, "reward") == []

    # A retry starts over from a new snapshot, so nothing of the cancelled attempt is shown as done.
    with db.write_session() as session:
        retried = service.retry(db=session, round_id=round_id)
        assert (retried.completed_stages, retried.results, retried.stage, retried.log_tail) == ([], {}, "", "")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_stopping_worker_hands_its_round_back_and_the_next_one_resumes_it(db, settings, trained_data):
    round_id = _launch(db, settings)
    worker = fake_worker(settings, db, {"end": "hang"})
    thread = threading.Thread(target=worker.step)
    thread.start()
    _wait_for(lambda: _round(db, round_id).stage == "ppo")
    worker.stop.set()
    thread.join(timeout=30)
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.queued and "shut down during stage ppo" in round_.error
    assert round_.completed_stages == ["snapshot"]
    status = json.loads((round_dir(settings, round_id) / "status.json").read_text())
    assert status["state"] == "interrupted"  # it got SIGTERM, not SIGKILL: time to checkpoint

    snapshot = (round_dir(settings, round_id) / "snapshot" / "pairs.jsonl").stat().st_mtime_ns
    fake_worker(settings, db, {}).step()
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded
    assert (round_dir(settings, round_id) / "snapshot" / "pairs.jsonl").stat().st_mtime_ns == snapshot


def test_a_round_whose_worker_went_silent_is_failed_by_another_worker(db, settings, trained_data):
    round_id = _launch(db, settings)
    with db.write_session() as session:
        service.claim_next(db=session, worker_id="dead-worker", executor="local", now=utcnow())
    settings.TRAINING_HEARTBEAT_TIMEOUT_S = 0.01
    time.sleep(0.05)
    assert fake_worker(settings, db, {}).step() is None
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.failed and "Worker dead-worker stopped reporting" in round_.error


def test_a_worker_whose_round_was_taken_away_stops_its_trainer(db, settings, trained_data):
    round_id = _launch(db, settings)
    thread = threading.Thread(target=fake_worker(settings, db, {"end": "hang"}).step)
    thread.start()
    _wait_for(lambda: _round(db, round_id).stage == "ppo")
    pid = json.loads((round_dir(settings, round_id) / "fake_args.json").read_text())["pid"]
    with db.write_session() as session:  # what another worker's fail_stale does to a slow worker
        service.fail_stale(db=session, now=utcnow() + timedelta(hours=1), timeout_s=60)
    thread.join(timeout=30)
    assert not thread.is_alive() and not _process_exists(pid)
    assert _round(db, round_id).status == RoundStatus.failed


def test_retry_of_a_failed_round_resumes_with_its_snapshot(db, settings, trained_data, fake_policy):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"end": "failed"}).step()
    snapshot = (round_dir(settings, round_id) / "snapshot" / "pairs.jsonl").stat().st_mtime_ns
    with db.session() as session:
        service.retry(db=session, round_id=round_id)
    fake_worker(settings, db, {}).step()
    assert _round(db, round_id).status == RoundStatus.succeeded
    assert (round_dir(settings, round_id) / "snapshot" / "pairs.jsonl").stat().st_mtime_ns == snapshot
    assert _versions(db) == [(1, "archived"), (2, "active")]


def test_a_retried_trainer_that_dies_silently_is_not_explained_by_its_last_attempt(db, settings, trained_data):
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"end": "failed"}).step()
    with db.session() as session:
        service.retry(db=session, round_id=round_id)
    fake_worker(settings, db, {"end": "silent"}).step()
    assert _round(db, round_id).error.startswith(
        "Training failed (exit code 3): the trainer stopped without saying why; see its log."
    )


def test_the_schedule_queues_and_runs_a_round(db, settings, trained_data):
    settings.TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS = 100
    round_id = fake_worker(settings, db, {}).step()
    assert round_id is not None
    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded and round_.requested_by_id is None
    assert fake_worker(settings, db, {}).step() is None  # nothing new since its snapshot


def test_a_database_outage_while_training_loses_no_progress(db, settings, trained_data, monkeypatch):
    real = service.record_progress
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] <= 3:  # the first ticks, while the fake trainer logs its points
            raise OperationalError("UPDATE training_rounds", {}, Exception("server closed the connection"))
        return real(**kwargs)

    monkeypatch.setattr(service, "record_progress", flaky)
    round_id = _launch(db, settings)
    fake_worker(settings, db, {"sleep_s": 0.05}).step()
    assert calls["n"] > 3
    assert _round(db, round_id).status == RoundStatus.succeeded
    with db.session() as session:
        points = session.query(RoundMetric).filter_by(round_id=round_id).order_by(RoundMetric.id).all()
        assert [(p.stage, p.step) for p in points] == [("reward_model", 1), ("reward_model", 2), ("ppo", 1), ("ppo", 2)]
