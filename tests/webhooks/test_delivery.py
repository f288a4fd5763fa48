"""Delivering the outbox to a real HTTP receiver: signatures, retries with backoff, giving up, recording an
outcome on a busy database, the thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.background import build_components
from app.webhooks import crypto, service
from app.webhooks.dispatcher import WebhookDispatcher, deliver_due, make_client
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

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
def http(hook_settings) -> httpx.Client:
    with make_client(hook_settings) as client:
        yield client


def _endpoint(db, settings, url: str, events=(WebhookEvent.judgment_created,)) -> tuple[int, str]:
    with db.session() as s:
        endpoint, secret = service.create(db=s, settings=settings, url=url, events=list(events))
        return endpoint.id, secret


def _verify(secret: str, header: str, body: bytes) -> int:
    """What a receiver does (README): the signed timestamp, if the signature matches."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    return int(fields["t"])


def _emit(db, event=WebhookEvent.judgment_created, **payload) -> int:
    with db.session() as s:
        return service.emit(db=s, event=event, payload=payload)


def _delivery(db) -> WebhookDelivery:
    with db.session() as s:
        return s.scalars(select(WebhookDelivery)).one()


def _pass(db, settings, http, clock) -> int:
    return deliver_due(database=db, settings=settings, client=http, clock=clock)


def test_delivery_is_json_signed_with_its_timestamp(db, hook_settings, http, receiver):
    _, secret = _endpoint(db, hook_settings, receiver.url)
    assert _emit(db, judgment_id=7, comparison_id=3, choice="a") == 1
    before = int(time.time())
    assert _pass(db, hook_settings, http, Clock()) == 1
    headers, body = receiver.received[0]
    assert before <= _verify(secret, headers["x-prefloop-signature"], body) <= int(time.time())
    # a replay with a newer timestamp does not verify: the timestamp is signed, not just sent
    later = headers["x-prefloop-signature"].replace("t=", "t=9", 1)
    with pytest.raises(AssertionError):
        _verify(secret, later, body)
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
    _, secret = _endpoint(db, hook_settings, receiver.url)
    _emit(db, judgment_id=1)
    clock = Clock()
    assert _pass(db, hook_settings, http, clock) == 1
    first = _delivery(db)
    assert (first.status, first.attempts, first.last_error) == (
        DeliveryStatus.pending,
        1,
        "HTTP 500 Internal Server Error",  # the status and its reason; the reply's body is not kept
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
    assert len(receiver.received) == 3 and len(bodies) == 1  # the same event, re-sent
    for headers, body in receiver.received:
        _verify(secret, headers["x-prefloop-signature"], body)


def test_gives_up_after_max_attempts_keeping_the_error_and_an_admin_can_retry(
    client, db, hook_settings, http, receiver, admin_token
):
    receiver.statuses = [500] * 3
    endpoint_id, _ = _endpoint(db, hook_settings, receiver.url)
    _emit(db, judgment_id=1)
    clock = Clock()
    for step in range(3):
        clock.now = T0 + timedelta(hours=step)
        assert _pass(db, hook_settings, http, clock) == 1
    failed = _delivery(db)
    assert (failed.status, failed.attempts, failed.last_error) == (
        DeliveryStatus.failed,
        3,
        "HTTP 500 Internal Server Error",
    )
    clock.now = T0 + timedelta(days=1)
    assert _pass(db, hook_settings, http, clock) == 0
    retried = client.post(f"/api/v1/webhooks/{endpoint_id}/deliveries/{failed.id}/retry", headers=admin_token)
    assert retried.json()["status"] == "pending" and retried.json()["attempts"] == 0
    assert _pass(db, hook_settings, http, lambda: datetime.now(UTC)) == 1
    assert _delivery(db).status == DeliveryStatus.delivered


def test_unreachable_receiver_records_the_network_error(db, hook_settings, http):
    _endpoint(db, hook_settings, "http://127.0.0.1:9/closed")  # the discard port: nothing listens
    _emit(db, judgment_id=1)
    assert _pass(db, hook_settings, http, Clock()) == 1
    delivery = _delivery(db)
    assert delivery.status == DeliveryStatus.pending and delivery.last_status_code is None
    assert delivery.last_error.startswith("ConnectError")


def test_a_secret_the_app_key_cannot_decrypt_fails_the_delivery_saying_so(db, hook_settings, http, receiver):
    endpoint_id, secret = _endpoint(db, hook_settings, receiver.url)
    with db.session() as s:  # stored under the key the app had before SECRET_KEY changed
        s.get(WebhookEndpoint, endpoint_id).encrypted_secret = crypto.encrypt("the key before a change", secret)
    _emit(db, judgment_id=1)
    assert _pass(db, hook_settings, http, Clock()) == 1
    delivery = _delivery(db)
    assert delivery.status == DeliveryStatus.failed and "rotate the webhook's secret" in delivery.last_error
    assert receiver.received == []


def test_emit_reaches_only_active_subscribers_and_only_on_commit(db, settings, receiver):
    _endpoint(db, settings, receiver.url, events=(WebhookEvent.round_finished,))
    paused, _ = _endpoint(db, settings, receiver.url, events=(WebhookEvent.round_finished,))
    _endpoint(db, settings, receiver.url, events=(WebhookEvent.policy_activated,))
    with db.session() as s:
        service.update_endpoint(
            db=s, settings=settings, endpoint=service.get_or_raise(db=s, endpoint_id=paused), is_active=False
        )
    assert _emit(db, WebhookEvent.round_finished, round_id=4) == 1
    with pytest.raises(RuntimeError), db.session() as s:
        service.emit(db=s, event=WebhookEvent.policy_activated, payload={"number": 2})
        raise RuntimeError("the caller's transaction fails")
    with db.session() as s:
        assert [d.event for d in s.scalars(select(WebhookDelivery))] == ["round.finished"]


def test_a_claimed_delivery_is_not_claimed_twice_and_its_attempt_counts_at_once(db, settings):
    _endpoint(db, settings, "http://127.0.0.1:9/x")
    _emit(db, judgment_id=1)
    lease = timedelta(seconds=60)
    with db.session() as s:
        assert service.claim_next(db=s, now=T0, in_flight=lease, max_attempts=3) is not None
    with db.session() as s:
        assert service.claim_next(db=s, now=T0, in_flight=lease, max_attempts=3) is None
    assert _delivery(db).attempts == 1


def test_an_attempt_whose_outcome_was_lost_is_retried_after_the_lease_and_never_beyond_its_budget(db, settings):
    _endpoint(db, settings, "http://127.0.0.1:9/x")
    _emit(db, judgment_id=1)
    lease = timedelta(seconds=60)
    for step in range(2):  # two attempts claimed, their outcomes never recorded (a crash)
        with db.session() as s:
            assert service.claim_next(db=s, now=T0 + step * lease, in_flight=lease, max_attempts=2) is not None
    with db.session() as s:
        assert service.claim_next(db=s, now=T0 + 2 * lease, in_flight=lease, max_attempts=2) is None
    gave_up = _delivery(db)
    assert (gave_up.status, gave_up.attempts) == (DeliveryStatus.failed, 2)
    assert "outcome was lost" in gave_up.last_error


def test_an_outcome_recorded_while_another_writer_holds_sqlite_is_sent_once(db, hook_settings, http, receiver):
    if not db.is_sqlite:
        pytest.skip("SQLite's database-wide write lock")
    _endpoint(db, hook_settings, receiver.url)
    _emit(db, judgment_id=1)
    other = sqlite3.connect(db.engine.url.database, isolation_level=None, check_same_thread=False)

    def hold_the_write_lock() -> None:  # another writer (a judgment submit) commits while the POST returns
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE webhook_endpoints SET description = 'changed meanwhile'")
        threading.Timer(0.5, lambda: other.execute("COMMIT")).start()

    receiver.on_request = hold_the_write_lock
    clock = Clock()
    assert _pass(db, hook_settings, http, clock) == 1
    clock.now = T0 + timedelta(hours=1)  # long past any lease
    assert _pass(db, hook_settings, http, clock) == 0
    other.close()
    delivery = _delivery(db)
    assert (delivery.status, delivery.attempts, len(receiver.received)) == (DeliveryStatus.delivered, 1, 1)


def test_a_failed_recording_is_retried_without_sending_again(db, hook_settings, http, receiver, monkeypatch):
    _endpoint(db, hook_settings, receiver.url)
    _emit(db, judgment_id=1)
    record, calls = service.record_attempt, []

    def locked_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("UPDATE webhook_deliveries", {}, sqlite3.OperationalError("database is locked"))
        return record(**kwargs)

    monkeypatch.setattr(service, "record_attempt", locked_once)
    clock = Clock()
    assert _pass(db, hook_settings, http, clock) == 1
    clock.now = T0 + timedelta(hours=1)
    assert _pass(db, hook_settings, http, clock) == 0
    delivery = _delivery(db)
    assert (delivery.status, delivery.attempts, len(receiver.received), len(calls)) == (
        DeliveryStatus.delivered,
        1,
        1,
        2,
    )


def test_dispatcher_thread_delivers_in_the_background(db, hook_settings, receiver):
    receiver.statuses = [502]
    _endpoint(db, hook_settings, receiver.url)
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
    enabled = settings.model_copy(update={"SAMPLER_ENABLED": False, "WORKER_ENABLED": False, "WEBHOOKS_ENABLED": True})
    assert [c.name for c in build_components(enabled, db)] == ["webhooks"]
    disabled = enabled.model_copy(update={"WEBHOOKS_ENABLED": False})
    assert build_components(disabled, db) == []
