"""Delivers the webhook outbox: a thread of the web process (app/background.py), or a process of its
own (`prefloop webhooks deliver`, the `webhooks` service of docker-compose).

Each attempt POSTs the stored JSON body with
    X-Prefloop-Signature: t=<unix seconds of this attempt>,v1=<hex HMAC-SHA256 of "<t>." + raw body>
    X-Prefloop-Event: <event type>      X-Prefloop-Delivery: <delivery id>
keyed with the endpoint's secret (the scheme of Stripe and Standard Webhooks). The timestamp is signed
with the body, so a receiver can reject a captured delivery replayed later (README: "Webhooks" shows
the check), and it de-duplicates on the body's "id" (a retried delivery repeats it).

An attempt is counted when it is claimed, before it is sent (service.claim_next), and its outcome is
recorded afterwards in a write session that waits for SQLite's lock and is retried on a database error,
never by sending again. A non-2xx answer or a network error is retried with exponential backoff; a
refused target (targets.py) fails at once with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import httpx
from sqlalchemy.exc import OperationalError
from tenacity import before_sleep_log, retry, retry_if_exception_type, stop_after_delay, wait_exponential

from app.core.config import Settings
from app.core.db import Database, utcnow

from . import crypto, service, targets

log = logging.getLogger("prefloop.webhooks")

# Attempts per pass before the loop looks at its stop flag again.
PASS_LIMIT = 20


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Outcome(NamedTuple):
    status_code: int | None
    error: str  # empty on a 2xx
    permanent: bool = False  # retrying cannot help (a refused target, an unreadable secret)


def make_client(settings: Settings) -> httpx.Client:
    """The client every delivery goes through. Redirects are not followed (a 3xx is a failed attempt),
    since a receiver could bounce the request to an internal address; proxies from the environment are
    ignored, since a proxy would connect to the unchecked name in our stead."""
    return httpx.Client(
        transport=targets.GuardedTransport(allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS),
        timeout=settings.WEBHOOK_TIMEOUT_S,
        follow_redirects=False,
        trust_env=False,
    )


def post(client: httpx.Client, delivery: service.DueDelivery, secret: str) -> Outcome:
    """One attempt. Only the status code and its reason phrase are kept of the reply: its body is never
    read, so the delivery log cannot become a window onto whatever answered."""
    data = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "prefloop-webhooks",
        "X-Prefloop-Event": delivery.event,
        "X-Prefloop-Delivery": str(delivery.id),
        "X-Prefloop-Signature": sign(secret, int(time.time()), data),
    }
    try:
        with client.stream("POST", delivery.url, content=data, headers=headers) as response:
            status_code, reason = response.status_code, response.reason_phrase
    except targets.UnsafeTarget as exc:
        return Outcome(None, f"Refused: {exc}", permanent=True)
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= status_code < 300:
        return Outcome(status_code, "")
    return Outcome(status_code, f"HTTP {status_code} {reason}"[:100].rstrip())


def _attempt(client: httpx.Client, settings: Settings, delivery: service.DueDelivery) -> Outcome:
    try:
        secret = crypto.decrypt(settings.secret_key, delivery.encrypted_secret)
    except crypto.InvalidToken:
        return Outcome(
            None, "The signing secret cannot be decrypted with this SECRET_KEY; rotate the webhook's secret.", True
        )
    return post(client, delivery, secret)


@retry(
    retry=retry_if_exception_type(OperationalError),  # "database is locked", a dropped connection
    wait=wait_exponential(multiplier=0.1, max=5),
    stop=stop_after_delay(120),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
def _record(database: Database, settings: Settings, delivery_id: int, outcome: Outcome, now: datetime) -> None:
    with database.write_session() as db:
        service.record_attempt(
            db=db,
            delivery_id=delivery_id,
            now=now,
            status_code=outcome.status_code,
            error=outcome.error,
            permanent=outcome.permanent,
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
            retry_base_s=settings.WEBHOOK_RETRY_BASE_S,
            retry_max_s=settings.WEBHOOK_RETRY_MAX_S,
        )


def deliver_due(
    *, database: Database, settings: Settings, client: httpx.Client, clock: Callable[[], datetime] = utcnow
) -> int:
    """One pass over the outbox: claim a due delivery, send it, record the outcome, up to PASS_LIMIT
    times. Returns the attempts made."""
    # httpx's timeout bounds connecting, sending and waiting for the reply separately, so an attempt
    # may take three of them; the lease outlasts that, and it covers one delivery, not a batch.
    in_flight = timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT_S + 5)
    for made in range(PASS_LIMIT):
        with database.write_session() as db:
            delivery = service.claim_next(
                db=db, now=clock(), in_flight=in_flight, max_attempts=settings.WEBHOOK_MAX_ATTEMPTS
            )
        if delivery is None:
            return made
        outcome = _attempt(client, settings, delivery)
        if outcome.error:
            log.warning("webhook delivery %d failed: %s", delivery.id, outcome.error)
        _record(database, settings, delivery.id, outcome, clock())
    return PASS_LIMIT


def run(*, settings: Settings, database: Database, stop: threading.Event) -> None:
    """Deliver until `stop` is set, looking again every WEBHOOK_POLL_S (at once after a busy pass)."""
    with make_client(settings) as client:
        while not stop.is_set():
            try:
                made = deliver_due(database=database, settings=settings, client=client)
            except Exception:  # a database outage must not end deliveries for the process's life
                log.exception("webhook dispatcher pass failed; retrying")
                made = 0
            if made == 0:
                stop.wait(settings.WEBHOOK_POLL_S)


class WebhookDispatcher:
    """run() in a thread of the web process."""

    name = "webhooks"

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=run,
            kwargs={"settings": self.settings, "database": self.database, "stop": self._stop},
            name="prefloop-webhooks",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3 * self.settings.WEBHOOK_TIMEOUT_S + 5)
