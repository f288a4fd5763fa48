"""The round state machine, atomic claiming, heartbeats, progress, cancel/retry and the schedule."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from app.core.db import Database, utcnow
from app.core.errors import Conflict, InvalidState, Unprocessable
from app.training import service, snapshot
from app.training.models import RoundMetric, RoundStatus, TrainingRound
from tests.factories import make_judged_pair, make_user
from trainer import defaults as round_defaults


def _launch(db, settings, **overrides) -> int:
    with db.session() as session:
        return service.launch(db=session, settings=settings, requested_by=None, config_overrides=overrides).id


def _claim(db, worker_id="w1") -> int | None:
    with db.write_session() as session:
        round_ = service.claim_next(db=session, worker_id=worker_id, executor="local", now=utcnow())
        return round_.id if round_ else None


def _status(db, round_id) -> RoundStatus:
    with db.session() as session:
        return service.get_or_raise(db=session, round_id=round_id).status


def test_launch_resolves_defaults_from_settings_and_overrides(db, settings):
    with db.session() as session:
        round_ = service.launch(
            db=session,
            settings=settings,
            requested_by=None,
            config_overrides={"ppo": {"learning_rate": 3e-5}, "activate": False},
        )
        config = round_.config
    assert config["ppo"]["learning_rate"] == 3e-5
    assert config["ppo"]["batch_size"] == 16  # untouched defaults stay
    assert config["activate"] is False
    # No judgments yet: the size-dependent defaults are the rule's values for the smallest round.
    assert config["gates"]["min_rm_accuracy"] == round_defaults.min_rm_accuracy(10).value == 0.76
    assert config["data"]["heldout_fraction"] == round_defaults.heldout_fraction(0).value == 0.3


def test_a_training_setting_fixes_a_derived_default(db, settings):
    fixed = settings.model_copy(update={"TRAINING_MIN_RM_ACCURACY": 0.6, "TRAINING_HELDOUT_FRACTION": 0.1})
    with db.session() as session:
        config = service.launch(db=session, settings=fixed, requested_by=None, config_overrides={}).config
    assert (config["gates"]["min_rm_accuracy"], config["data"]["heldout_fraction"]) == (0.6, 0.1)


@pytest.mark.parametrize(
    ("overrides", "loc", "words"),
    [
        ({"ppo": {"lr": 1e-5}}, ["body", "ppo", "lr"], "Extra inputs are not permitted"),
        ({"nonsense": 1}, ["body", "nonsense"], "Extra inputs are not permitted"),
        (
            {"ppo": {"batch_size": 16, "num_mini_batches": 3}},
            ["body", "ppo", "num_mini_batches"],
            "must divide batch_size",
        ),
        (
            {"ppo": {"num_mini_batches": 2, "gradient_accumulation_steps": 3}},
            ["body", "ppo", "gradient_accumulation_steps"],
            "must divide the minibatch",
        ),
        ({"ppo": {"total_episodes": 40}}, ["body", "ppo", "total_episodes"], "multiple of batch_size"),
        (
            {"gates": {"min_rm_accuracy": 1.5}},
            ["body", "gates", "min_rm_accuracy"],
            "less than or equal to 1",
        ),
        ({"reward": "fast"}, ["body", "reward"], "valid dictionary"),
    ],
)
def test_launch_refuses_a_bad_config_naming_the_field(db, settings, overrides, loc, words):
    with db.session() as session, pytest.raises(Unprocessable) as caught:
        service.launch(db=session, settings=settings, requested_by=None, config_overrides=overrides)
    assert caught.value.loc == loc
    assert words in caught.value.msg


def test_only_one_round_may_be_in_flight(db, settings):
    first = _launch(db, settings)
    with db.session() as session, pytest.raises(Conflict, match=f"Round {first} is queued"):
        service.launch(db=session, settings=settings, requested_by=None, config_overrides={})
    _claim(db)
    with db.session() as session, pytest.raises(Conflict, match=f"Round {first} is running"):
        service.launch(db=session, settings=settings, requested_by=None, config_overrides={})


def test_the_database_itself_refuses_a_second_round_in_flight(db, settings):
    """Even a writer that skips the service's check (a race) cannot queue a second round."""
    _launch(db, settings)
    with pytest.raises(Exception, match="(?i)unique"), db.session() as session:
        session.add(TrainingRound(config={}))
        session.flush()


def test_claim_takes_the_queued_round_once(db, settings):
    round_id = _launch(db, settings)
    assert _claim(db, "w1") == round_id
    assert _claim(db, "w2") is None
    with db.session() as session:
        round_ = service.get_or_raise(db=session, round_id=round_id)
        assert (round_.status, round_.worker_id) == (RoundStatus.running, "w1")
        assert round_.started_at is not None and round_.heartbeat_at is not None


def test_two_workers_racing_claim_one_round_once(db, settings):
    """Each worker has its own engine and connection, as two processes would."""
    round_id = _launch(db, settings)
    barrier, results = threading.Barrier(4), []

    def worker(n: int) -> None:
        own = Database(db.url)
        barrier.wait()
        results.append(_claim(own, f"w{n}"))
        own.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=str) == [round_id, None, None, None]


def test_transitions_outside_the_state_machine_are_refused(db, settings):
    round_id = _launch(db, settings)
    with db.session() as session, pytest.raises(InvalidState, match="queued; only a failed or cancelled"):
        service.retry(db=session, round_id=round_id)
    _claim(db)
    with db.session() as session:
        service.finish(
            db=session,
            round_id=round_id,
            worker_id="w1",
            status=RoundStatus.rejected,
            now=utcnow(),
            error="Rejected by a gate",
        )
    with db.session() as session, pytest.raises(InvalidState, match="rejected; only a queued or running"):
        service.request_cancel(db=session, round_id=round_id, now=utcnow())
    with db.session() as session, pytest.raises(InvalidState, match="rejected; only a failed or cancelled"):
        service.retry(db=session, round_id=round_id)


def test_cancel_of_a_queued_round_is_immediate_of_a_running_one_a_request(db, settings):
    first = _launch(db, settings)
    with db.session() as session:
        assert service.request_cancel(db=session, round_id=first, now=utcnow()).status == RoundStatus.cancelled
    second = _launch(db, settings)  # the cancelled one is no longer in flight
    _claim(db)
    with db.session() as session:
        round_ = service.request_cancel(db=session, round_id=second, now=utcnow())
        assert (round_.status, round_.cancel_requested) == (RoundStatus.running, True)


def test_a_worker_that_lost_its_round_cannot_write_to_it(db, settings):
    round_id = _launch(db, settings)
    _claim(db, "w1")
    with db.session() as session:
        service.fail_stale(db=session, now=utcnow() + timedelta(seconds=600), timeout_s=60)
    with db.session() as session, pytest.raises(InvalidState, match="no longer run by worker w1"):
        service.heartbeat(db=session, round_id=round_id, worker_id="w1", now=utcnow())


def test_stale_heartbeat_fails_the_round_with_a_reason_and_it_can_be_retried(db, settings):
    round_id = _launch(db, settings)
    _claim(db, "w1")
    now = utcnow()
    with db.session() as session:
        service.heartbeat(db=session, round_id=round_id, worker_id="w1", now=now)
        assert service.fail_stale(db=session, now=now + timedelta(seconds=59), timeout_s=60) == []
    with db.session() as session:
        [stale] = service.fail_stale(db=session, now=now + timedelta(seconds=90), timeout_s=60)
        assert stale.status == RoundStatus.failed
        assert "Worker w1 stopped reporting (no heartbeat for 90 s, limit 60 s)" in stale.error
        assert "Retry the round" in stale.error
    with db.session() as session:
        round_ = service.retry(db=session, round_id=round_id)
        assert (round_.status, round_.error, round_.worker_id) == (RoundStatus.queued, "", "")
    assert _claim(db, "w2") == round_id


def test_retry_waits_for_the_round_in_flight(db, settings):
    first = _launch(db, settings)
    with db.session() as session:
        service.request_cancel(db=session, round_id=first, now=utcnow())
    _launch(db, settings)
    with db.session() as session, pytest.raises(Conflict):
        service.retry(db=session, round_id=first)


def test_progress_is_recorded_and_a_rewound_step_replaces_later_points(db, settings):
    round_id = _launch(db, settings)
    _claim(db, "w1")
    status = {
        "stage": "ppo",
        "step": 3,
        "total_steps": 8,
        "latest_metrics": {"objective/kl": 0.3},
        "completed_stages": ["reward_model"],
        "results": {"reward_model": {"rm/eval/accuracy": 0.8}},
    }
    points = [{"stage": "ppo", "step": s, "values": {"objective/kl": s / 10}} for s in (1, 2, 3)]
    with db.session() as session:
        service.record_progress(
            db=session,
            round_id=round_id,
            worker_id="w1",
            now=utcnow(),
            status=status,
            points=points,
            log_tail="log",
        )
    # Resumed from the checkpoint after update 1: updates 2.. are logged again, with new values.
    again = [{"stage": "ppo", "step": s, "values": {"objective/kl": s}} for s in (2, 3, 4)]
    with db.session() as session:
        round_ = service.record_progress(
            db=session,
            round_id=round_id,
            worker_id="w1",
            now=utcnow(),
            status=status | {"step": 4},
            points=again,
            log_tail="more log",
        )
        assert (round_.stage, round_.step, round_.total_steps, round_.log_tail) == ("ppo", 4, 8, "more log")
        assert round_.completed_stages == ["reward_model"]
        assert round_.results["reward_model"] == {"rm/eval/accuracy": 0.8}
        history = service.metric_history(db=session, round_id=round_id)
        assert [(p.step, p.values["objective/kl"]) for p in history] == [(1, 0.1), (2, 2), (3, 3), (4, 4)]
        newer = service.metric_history(db=session, round_id=round_id, since_id=history[1].id)
        assert [p.step for p in newer] == [3, 4]


def test_a_rewind_inside_one_batch_keeps_the_later_run(db, settings):
    round_id = _launch(db, settings)
    _claim(db, "w1")
    points = [
        {"stage": "ppo", "step": s, "values": {"run": run}}
        for run, steps in ((1, (1, 2, 3)), (2, (2, 3)))
        for s in steps
    ]
    with db.session() as session:
        service.record_progress(
            db=session, round_id=round_id, worker_id="w1", now=utcnow(), status={}, points=points, log_tail=""
        )
        rows = session.query(RoundMetric).order_by(RoundMetric.step).all()
        assert [(r.step, r.values["run"]) for r in rows] == [(1, 1), (2, 2), (3, 2)]


def test_schedule_launches_after_enough_new_usable_judgments(db, settings, fake_policy):
    settings.TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS = 3
    annotator = make_user(db, "ann")
    excluded = make_user(db, "excluded", excluded_from_training=True)
    judge = {"version_a_id": fake_policy.id, "text_a": "x", "text_b": "y"}
    make_judged_pair(db, annotator_id=annotator, prompt="p1", **judge)
    make_judged_pair(db, annotator_id=annotator, prompt="p2", choice="tie", **judge)  # not usable by default
    make_judged_pair(db, annotator_id=excluded, prompt="p3", **judge)  # not usable
    make_judged_pair(db, annotator_id=annotator, prompt="p4", **judge)
    with db.session() as session:
        assert snapshot.count_usable_judgments(db=session) == 2
        assert service.maybe_schedule(db=session, settings=settings) is None
    last = make_judged_pair(db, annotator_id=annotator, prompt="p5", **judge)
    with db.session() as session:
        round_ = service.maybe_schedule(db=session, settings=settings)
        assert round_ is not None and round_.requested_by_id is None
        assert service.maybe_schedule(db=session, settings=settings) is None  # one is in flight
    # The round's snapshot bound resets the count: nothing new since judgment `last`.
    with db.session() as session:
        round_.snapshot_max_judgment_id = last
        session.merge(round_)
        service.request_cancel(db=session, round_id=round_.id, now=utcnow())
    with db.session() as session:
        assert service.maybe_schedule(db=session, settings=settings) is None


def test_schedule_is_off_at_zero(db, settings, trained_data):
    assert settings.TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS == 0
    with db.session() as session:
        assert service.maybe_schedule(db=session, settings=settings) is None


def test_highest_snapshotted_judgment_id_is_the_largest_bound_of_any_round(db):
    with db.session() as session:
        assert service.highest_snapshotted_judgment_id(db=session) == 0
        session.add_all(
            [
                TrainingRound(status=RoundStatus.succeeded, snapshot_max_judgment_id=40),
                TrainingRound(status=RoundStatus.failed, snapshot_max_judgment_id=70),
                TrainingRound(status=RoundStatus.succeeded, snapshot_max_judgment_id=55),
                TrainingRound(status=RoundStatus.cancelled),  # cancelled before its snapshot
            ]
        )
    with db.session() as session:
        assert service.highest_snapshotted_judgment_id(db=session) == 70
