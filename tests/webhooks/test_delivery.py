"""Delivering the outbox to a real HTTP receiver: signatures, retries with backoff, giving up, the thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from app.background import build_components
from app.webhooks import service
from app.webhooks.dispatcher import WebhookDispatcher, deliver_due
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent

# The dispatcher's clock runs a day ahead of the wall clock that stamps emitted events (due at once).
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def hook_settings(settings):
    return settings.model_copy(
        update={
            "WEBHOOK_RETRY_BASE_S": 10.0,
            "WEBHOOK_MAX_ATTEMPTS": 3,
            "WEBHOOK_TIMEOUT_S": 5.0,
            "WEBHOOK_POLL_S": 0.05,
        }
    )


@pytest.fixture
def http() -> httpx.Client:
    with httpx.Client(timeout=5) as client:
        yield client


def _endpoint(db, url: str, events=(WebhookEvent.judgment_created,)) -> tuple[int, str]:
    with db.session() as s:
        endpoint = service.create(db=s, url=url, events=list(events))
        return endpoint.id, endpoint.secret


def _emit(db, event=WebhookEvent.judgment_created, **payload) -> int:
    with db.session() as s:
        return service.emit(db=s, event=event, payload=payload)


def _delivery(db) -> WebhookDelivery:
    with db.session() as s:
        return s.scalars(select(WebhookDelivery)).one()


def _pass(db, settings, http, clock) -> int:
    return deliver_due(database=db, settings=settings, client=http, clock=clock)


def test_delivery_is_signed_json(db, hook_settings, http, receiver):
    _, secret = _endpoint(db, receiver.url)
    assert _emit(db, judgment_id=7, comparison_id=3, choice="a") == 1
    before = int(time.time())
    assert _pass(db, hook_settings, http, Clock()) == 1
    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-prefloop-signature"], expected)
    assert before <= int(headers["x-prefloop-timestamp"]) <= int(time.time())
    assert headers["x-prefloop-event"] == "judgment.created" and headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert envelope["type"] == "judgment.created" and envelope["id"].startswith("evt_")
    assert envelope["data"] == {"judgment_id": 7, "comparison_id": 3, "choice": "a"}
    delivery = _delivery(db)
    assert headers["x-prefloop-delivery"] == str(delivery.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.delivered,
        1,
        200,
    )


def test_failing_then_succeeding_receiver_is_retried_with_backoff(db, hook_settings, http, receiver):
    receiver.statuses = [500, 503]
    _endpoint(db, receiver.url)
    _emit(db, judgment_id=1)
    clock = Clock()
    assert _pass(db, hook_settings, http, clock) == 1
    first = _delivery(db)
    assert (first.status, first.attempts, first.last_error) == (
        DeliveryStatus.pending,
        1,
        "HTTP 500: receiver is down",
    )
    assert first.next_attempt_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=10)
    clock.now = T0 + timedelta(seconds=9)
    assert _pass(db, hook_settings, http, clock) == 0  # not due yet
    clock.now = T0 + timedelta(seconds=10)
    assert _pass(db, hook_settings, http, clock) == 1
    assert _delivery(db).next_attempt_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=30)  # waited 2 x base
    clock.now = T0 + timedelta(seconds=30)
    assert _pass(db, hook_settings, http, clock) == 1
    done = _delivery(db)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == (
        DeliveryStatus.delivered,
        3,
        200,
        "",
    )
    bodies = {body for _, body in receiver.received}
    signatures = {headers["x-prefloop-signature"] for headers, _ in receiver.received}
    assert (
        len(receiver.received) == 3 and len(bodies) == 1 and len(signatures) == 1
    )  # the same event, re-sent


def test_gives_up_after_max_attempts_keeping_the_error_and_an_admin_can_retry(
    client, db, hook_settings, http, receiver, admin_token
):
    receiver.statuses = [500] * 3
    endpoint_id, _ = _endpoint(db, receiver.url)
    _emit(db, judgment_id=1)
    clock = Clock()
    for step in range(3):
        clock.now = T0 + timedelta(hours=step)
        assert _pass(db, hook_settings, http, clock) == 1
    failed = _delivery(db)
    assert (failed.status, failed.attempts, failed.last_error) == (
        DeliveryStatus.failed,
        3,
        "HTTP 500: receiver is down",
    )
    clock.now = T0 + timedelta(days=1)
    assert _pass(db, hook_settings, http, clock) == 0
    retried = client.post(f"/api/v1/webhooks/{endpoint_id}/deliveries/{failed.id}/retry", headers=admin_token)
    assert retried.json()["status"] == "pending" and retried.json()["attempts"] == 0
    assert _pass(db, hook_settings, http, lambda: datetime.now(UTC)) == 1
    assert _delivery(db).status == DeliveryStatus.delivered


def test_unreachable_receiver_records_the_network_error(db, hook_settings, http):
    _endpoint(db, "http://127.0.0.1:9/closed")  # the discard port: nothing listens
    _emit(db, judgment_id=1)
    assert _pass(db, hook_settings, http, Clock()) == 1
    delivery = _delivery(db)
    assert delivery.status == DeliveryStatus.pending and delivery.last_status_code is None
    assert delivery.last_error.startswith("ConnectError")


def test_emit_reaches_only_active_subscribers_and_only_on_commit(db, receiver):
    _endpoint(db, receiver.url, events=(WebhookEvent.round_finished,))
    paused, _ = _endpoint(db, receiver.url, events=(WebhookEvent.round_finished,))
    _endpoint(db, receiver.url, events=(WebhookEvent.policy_activated,))
    with db.session() as s:
        service.update_endpoint(
            db=s, endpoint=service.get_or_raise(db=s, endpoint_id=paused), is_active=False
        )
    assert _emit(db, WebhookEvent.round_finished, round_id=4) == 1
    with pytest.raises(RuntimeError), db.session() as s:
        service.emit(db=s, event=WebhookEvent.policy_activated, payload={"number": 2})
        raise RuntimeError("the caller's transaction fails")
    with db.session() as s:
        assert [d.event for d in s.scalars(select(WebhookDelivery))] == ["round.finished"]


def test_a_claimed_delivery_is_not_claimed_twice(db):
    _endpoint(db, "http://127.0.0.1:9/x")
    _emit(db, judgment_id=1)
    lease = timedelta(seconds=60)
    with db.session() as s:
        assert len(service.claim_due(db=s, now=T0 + timedelta(days=1), limit=10, lease=lease)) == 1
    with db.session() as s:
        assert service.claim_due(db=s, now=T0 + timedelta(days=1), limit=10, lease=lease) == []


def test_dispatcher_thread_delivers_in_the_background(db, hook_settings, receiver):
    receiver.statuses = [502]
    _endpoint(db, receiver.url)
    dispatcher = WebhookDispatcher(hook_settings.model_copy(update={"WEBHOOK_RETRY_BASE_S": 0.01}), db)
    dispatcher.start()
    try:
        _emit(db, judgment_id=1)
        deadline = time.monotonic() + 15
        while _delivery(db).status != DeliveryStatus.delivered and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert _delivery(db).status == DeliveryStatus.delivered and len(receiver.received) == 2


def test_the_dispatcher_runs_with_the_server_unless_disabled(settings, db):
    enabled = settings.model_copy(
        update={"SAMPLER_ENABLED": False, "WORKER_ENABLED": False, "WEBHOOKS_ENABLED": True}
    )
    assert [c.name for c in build_components(enabled, db)] == ["webhooks"]
    disabled = enabled.model_copy(update={"WEBHOOKS_ENABLED": False})
    assert build_components(disabled, db) == []
