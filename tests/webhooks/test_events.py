"""The domains announce what happened: a stored judgment, a completed pair, a finished round, an activated
policy each queue a delivery for the endpoints subscribed to that event, in the same transaction."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.db import utcnow
from app.judgments import service as judgment_service
from app.judgments.models import ScreenChoice
from app.policies import service as policy_service
from app.policies.models import PolicyStatus
from app.queue import service as queue_service
from app.training import service as training_service
from app.webhooks import service
from app.webhooks.models import WebhookDelivery, WebhookEvent
from tests.factories import make_annotators, make_comparisons, publish_policy_version


def subscribe(db, settings, *events: WebhookEvent) -> None:
    with db.session() as session:
        service.create(db=session, settings=settings, url="http://127.0.0.1:9/hook", events=list(events))


def queued(db) -> list[tuple[str, dict]]:
    with db.session() as session:
        return [
            (d.event, json.loads(d.body)["data"])
            for d in session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        ]


def test_a_stored_judgment_and_its_completed_pair_are_announced(db, settings):
    subscribe(db, settings, WebhookEvent.judgment_created, WebhookEvent.comparison_completed)
    [comparison_id] = make_comparisons(db, 1, overlap_target=2)
    first, second = make_annotators(db, 2)
    for annotator in (first, second):
        with db.write_session() as session:
            queue_service.next_for(db=session, annotator_id=annotator, lock_ttl=timedelta(minutes=5), gold_rate=0.0)
        with db.write_session() as session:
            judgment_service.submit(
                db=session,
                annotator_id=annotator,
                comparison_id=comparison_id,
                side=ScreenChoice.tie,
                client_request_id=f"r{annotator}",
                rationale_max_chars=10,
            )
    # a retried submit stores nothing new and announces nothing new
    with db.write_session() as session:
        judgment_service.submit(
            db=session,
            annotator_id=second,
            comparison_id=comparison_id,
            side=ScreenChoice.tie,
            client_request_id=f"r{second}",
            rationale_max_chars=10,
        )
    events = queued(db)
    assert [e for e, _ in events] == ["judgment.created", "judgment.created", "comparison.completed"]
    assert events[0][1]["annotator_id"] == first and events[0][1]["choice"] == "tie"
    assert events[0][1]["comparison_id"] == comparison_id
    assert events[2][1] == {"comparison_id": comparison_id, "judgment_count": 2}


def test_activation_and_rollback_are_announced(settings, db, tiny_policy_dir, active_policy):
    subscribe(db, settings, WebhookEvent.policy_activated)
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)
    with db.session() as session:
        policy_service.activate(db=session, version_id=v2)  # already active: no event
    with db.session() as session:
        policy_service.activate(db=session, version_id=active_policy)
    assert [(e, d["policy_number"], d["previous_number"]) for e, d in queued(db)] == [
        ("policy.activated", 2, 1),
        ("policy.activated", 1, 2),
    ]


def test_every_way_a_round_ends_is_announced(db, settings):
    subscribe(db, settings, WebhookEvent.round_finished)
    with db.session() as session:
        cancelled = training_service.launch(db=session, settings=settings, requested_by=None, config_overrides={}).id
    with db.session() as session:
        training_service.request_cancel(db=session, round_id=cancelled, now=utcnow())
    with db.session() as session:
        stale = training_service.launch(db=session, settings=settings, requested_by=None, config_overrides={}).id
    with db.write_session() as session:
        training_service.claim_next(db=session, worker_id="w1", executor="local", now=utcnow())
    with db.session() as session:
        training_service.fail_stale(db=session, now=utcnow() + timedelta(hours=1), timeout_s=60)
    with db.session() as session:
        training_service.retry(db=session, round_id=stale)
    with db.write_session() as session:
        training_service.claim_next(db=session, worker_id="w2", executor="local", now=utcnow())
    with db.session() as session:
        training_service.finish(
            db=session,
            round_id=stale,
            worker_id="w2",
            status=training_service.S.rejected,
            now=utcnow(),
            error="Rejected by a gate",
        )
    assert [(d["round_id"], d["status"]) for _, d in queued(db)] == [
        (cancelled, "cancelled"),
        (stale, "failed"),
        (stale, "rejected"),
    ]
    assert queued(db)[2][1]["error"] == "Rejected by a gate" and queued(db)[2][1]["policy_number"] is None


def test_a_finished_round_announces_its_side_effects_against_the_parent(db, settings):
    """The same figures as the round's page and GET /rounds/{id}: parent, new and the change."""
    subscribe(db, settings, WebhookEvent.round_finished)
    with db.session() as session:
        round_id = training_service.launch(db=session, settings=settings, requested_by=None, config_overrides={}).id
    with db.write_session() as session:
        training_service.claim_next(db=session, worker_id="w1", executor="local", now=utcnow())
    evaluation = {"eval/evasion_rate": 0.73, "eval/evasion_rate_old": 0.45, "eval/response_length": 7.5}
    with db.session() as session:
        training_service.record_progress(
            db=session,
            round_id=round_id,
            worker_id="w1",
            now=utcnow(),
            status={"stage": "evaluate", "results": {"evaluate": evaluation}},
            points=[],
            log_tail="",
        )
        training_service.finish(
            db=session, round_id=round_id, worker_id="w1", status=training_service.S.rejected, now=utcnow()
        )
    [(_, payload)] = queued(db)
    figures = {f["name"]: f for f in payload["side_effects"]}
    assert list(figures) == [
        "eval/evasion_rate",
        "eval/distinct_1",
        "eval/distinct_2",
        "eval/response_length",
        "eval/eos_rate",
    ]
    evasions = figures["eval/evasion_rate"]
    assert (evasions["parent"], evasions["new"], evasions["tone"]) == (0.45, 0.73, "bad")
    assert evasions["change"] == pytest.approx(0.28) and evasions["share"] is True
    # a figure the round did not measure is reported as such, not as 0
    assert (figures["eval/response_length"]["parent"], figures["eval/response_length"]["change"]) == (None, None)
    assert figures["eval/distinct_2"]["new"] is None
