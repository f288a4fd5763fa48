"""Webhook endpoints and the delivery outbox: the only module that writes those tables.

Other domains call emit() inside their own unit of work, e.g. after storing a judgment:

    webhook_service.emit(db=db, event=WebhookEvent.judgment_created,
                         payload={"judgment_id": j.id, "comparison_id": j.comparison_id, "choice": j.choice})

Payloads carry ids and small fields, not texts: a receiver fetches what it needs through the API.
Every delivery is POSTed as JSON {"id", "type", "created_at", "data"} (see dispatcher.py for signing).
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import rowcount, utcnow
from app.core.errors import NotFound, Unprocessable

from . import crypto, targets
from .models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def get_or_raise(*, db: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} does not exist.", loc=("path", "webhook_id"))
    return endpoint


def list_(*, db: Session) -> list[WebhookEndpoint]:
    return list(db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def check_url(*, settings: Settings, url: str) -> str:
    """The URL, if webhooks may reach it (see targets.py); a 422 naming `url` otherwise.

    A name that does not resolve now is accepted: every delivery checks the address again.
    """
    try:
        targets.check(url, allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS)
    except targets.UnsafeTarget as exc:
        raise Unprocessable(str(exc), loc=("body", "url")) from exc
    except targets.Unresolvable:
        pass
    return url


def _set_secret(settings: Settings, endpoint: WebhookEndpoint) -> str:
    secret = new_secret()
    endpoint.encrypted_secret = crypto.encrypt(settings.secret_key, secret)
    endpoint.secret_prefix = secret[:10]
    return secret


def create(
    *, db: Session, settings: Settings, url: str, events: list[WebhookEvent], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its fresh signing secret, which is returned this once and stored encrypted."""
    endpoint = WebhookEndpoint(
        url=check_url(settings=settings, url=url), events=sorted({e.value for e in events}), description=description
    )
    secret = _set_secret(settings, endpoint)
    db.add(endpoint)
    db.flush()
    return endpoint, secret


def update_endpoint(
    *,
    db: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[WebhookEvent] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change what was given; deliveries already queued keep the body they were queued with."""
    if url is not None:
        endpoint.url = check_url(settings=settings, url=url)
    if events is not None:
        endpoint.events = sorted({e.value for e in events})
    if description is not None:
        endpoint.description = description
    if is_active is not None:
        endpoint.is_active = is_active
    db.flush()
    return endpoint


def rotate_secret(*, db: Session, settings: Settings, endpoint: WebhookEndpoint) -> str:
    """Replace the signing secret and return the new one (this once); deliveries from now on
    (retries included) are signed with it."""
    secret = _set_secret(settings, endpoint)
    db.flush()
    return secret


def delete_endpoint(*, db: Session, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its outbox (pending deliveries are dropped)."""
    db.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    db.delete(endpoint)
    db.flush()


def _body(event: WebhookEvent, payload: dict[str, Any], at: datetime) -> str:
    envelope = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event.value,
        "created_at": at.isoformat().replace("+00:00", "Z"),
        "data": payload,
    }
    return json.dumps(envelope, separators=(",", ":"), default=str)


def _queue(db: Session, endpoint_id: int, event: WebhookEvent, body: str, now: datetime) -> WebhookDelivery:
    delivery = WebhookDelivery(endpoint_id=endpoint_id, event=event.value, body=body, next_attempt_at=now)
    db.add(delivery)
    return delivery


def emit(*, db: Session, event: WebhookEvent, payload: dict[str, Any]) -> int:
    """Queue `event` for every active endpoint subscribed to it, in the caller's transaction.

    Returns how many deliveries were queued. The body (and its event id) is the same for every endpoint.
    """
    return emit_all(db=db, events=[(event, payload)])


def emit_all(*, db: Session, events: list[tuple[WebhookEvent, dict[str, Any]]]) -> int:
    """emit() for several events of one unit of work, reading the endpoints once (a judgment submit,
    the hottest write path, may announce two)."""
    now = utcnow()
    endpoints = list(db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.is_active.is_(True))))
    queued = 0
    for event, payload in events:
        endpoint_ids = [e.id for e in endpoints if event.value in e.events]
        if not endpoint_ids:
            continue
        body = _body(event, payload, now)
        for endpoint_id in endpoint_ids:
            _queue(db, endpoint_id, event, body, now)
        queued += len(endpoint_ids)
    if queued:
        db.flush()
    return queued


def send_test(*, db: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ping to this endpoint alone (whatever it subscribes to), to check URL and secret."""
    now = utcnow()
    delivery = _queue(
        db, endpoint.id, WebhookEvent.ping, _body(WebhookEvent.ping, {"webhook_id": endpoint.id}, now), now
    )
    db.flush()
    return delivery


def list_deliveries(
    *, db: Session, endpoint: WebhookEndpoint, status: DeliveryStatus | None, limit: int
) -> list[WebhookDelivery]:
    """The endpoint's most recent deliveries first."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return list(db.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit)))


def retry_delivery(*, db: Session, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again now, with a fresh attempt budget (a failed one, or hurry a pending one)."""
    delivery = db.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"Delivery {delivery_id} of webhook {endpoint.id} does not exist.", loc=("path", "delivery_id"))
    if delivery.status != DeliveryStatus.delivered:
        delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.pending, 0, utcnow()
        db.flush()
    return delivery


# ---- the dispatcher's side of the outbox ------------------------------------------------------------


class DueDelivery(NamedTuple):
    id: int
    event: str
    url: str
    encrypted_secret: str
    body: str


def claim_next(*, db: Session, now: datetime, in_flight: timedelta, max_attempts: int) -> DueDelivery | None:
    """The next due delivery of an active endpoint, claimed for one attempt, or None.

    The attempt is counted here, before anything is sent, so `attempts` stays true even if the outcome
    is never recorded; and next_attempt_at moves `in_flight` ahead (a lease), so no other dispatcher
    sends it meanwhile. Only an attempt whose outcome was lost (a crash) is sent again when the lease
    ends; a recorded failure waits its backoff (record_attempt).
    """
    due = db.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.attempts,
            WebhookDelivery.event,
            WebhookEndpoint.url,
            WebhookEndpoint.encrypted_secret,
            WebhookDelivery.body,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.pending,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.is_active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(10)
    ).all()
    for delivery_id, due_at, attempts, event, url, encrypted_secret, body in due:
        unchanged = (
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.pending,
            WebhookDelivery.next_attempt_at == due_at,
        )
        if attempts >= max_attempts:  # the last attempt's outcome was lost: give up rather than exceed
            db.execute(
                update(WebhookDelivery)
                .where(*unchanged)
                .values(status=DeliveryStatus.failed, last_error="Gave up: the last attempt's outcome was lost.")
            )
            continue
        taken = db.execute(
            update(WebhookDelivery).where(*unchanged).values(next_attempt_at=now + in_flight, attempts=attempts + 1)
        )
        if rowcount(taken) == 1:
            return DueDelivery(delivery_id, event, url, encrypted_secret, body)
    return None


def record_attempt(
    *,
    db: Session,
    delivery_id: int,
    now: datetime,
    status_code: int | None,
    error: str,
    permanent: bool,
    max_attempts: int,
    retry_base_s: float,
    retry_max_s: float,
) -> WebhookDelivery | None:
    """Store the outcome of the attempt claim_next counted: delivered on a 2xx; failed for good when the
    target is refused (`permanent`) or max_attempts is spent; otherwise retried after an exponentially
    growing wait (base, 2 base, 4 base ... capped). Recording it twice stores the same thing."""
    delivery = db.get(WebhookDelivery, delivery_id)
    if delivery is None:  # the endpoint was deleted while the attempt was in flight
        return None
    delivery.last_status_code = status_code
    if status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.delivered_at, delivery.last_error = DeliveryStatus.delivered, now, ""
    elif permanent or delivery.attempts >= max_attempts:
        delivery.status, delivery.last_error = DeliveryStatus.failed, error
    else:
        wait = min(retry_base_s * 2 ** (max(delivery.attempts, 1) - 1), retry_max_s)
        delivery.next_attempt_at, delivery.last_error = now + timedelta(seconds=wait), error
    db.flush()
    return delivery
