"""Delivers the webhook outbox: a background thread in the web process (see app/background.py).

Each attempt POSTs the stored JSON body with
    X-Prefloop-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the endpoint's secret>
    X-Prefloop-Timestamp: <unix seconds of this attempt>
    X-Prefloop-Event: <event type>      X-Prefloop-Delivery: <delivery id>
A receiver verifies the signature over the exact bytes it received and de-duplicates on the body's
"id" (a retried delivery repeats it). A non-2xx answer or a network error is retried with exponential
backoff through the outbox's next_attempt_at, so retries survive restarts; see service.record_attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from app.core.config import Settings
from app.core.db import Database, utcnow

from . import service

log = logging.getLogger("prefloop.webhooks")

CLAIM_BATCH = 20


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(client: httpx.Client, delivery: service.DueDelivery) -> tuple[int | None, str]:
    """One attempt: (HTTP status or None, error text; empty on a 2xx)."""
    data = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "prefloop-webhooks",
        "X-Prefloop-Event": delivery.event,
        "X-Prefloop-Delivery": str(delivery.id),
        "X-Prefloop-Timestamp": str(int(time.time())),
        "X-Prefloop-Signature": signature(delivery.secret, data),
    }
    try:
        response = client.post(delivery.url, content=data, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


def deliver_due(
    *, database: Database, settings: Settings, client: httpx.Client, clock: Callable[[], datetime] = utcnow
) -> int:
    """One pass over the outbox: claim what is due, send it, record each outcome. Returns attempts made."""
    # Claimed deliveries are sent one after another: the lease outlasts the whole batch timing out, so
    # another process's dispatcher never re-sends one that is still waiting its turn here.
    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_S * (CLAIM_BATCH + 1) + 30)
    with database.session() as db:
        claimed = service.claim_due(db=db, now=clock(), limit=CLAIM_BATCH, lease=lease)
    for delivery in claimed:
        status_code, error = post(client, delivery)
        if error:
            log.warning("webhook delivery %d to %s failed: %s", delivery.id, delivery.url, error)
        with database.session() as db:
            service.record_attempt(
                db=db,
                delivery_id=delivery.id,
                now=clock(),
                status_code=status_code,
                error=error,
                max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
                retry_base_s=settings.WEBHOOK_RETRY_BASE_S,
                retry_max_s=settings.WEBHOOK_RETRY_MAX_S,
            )
    return len(claimed)


class WebhookDispatcher:
    """Polls the outbox every WEBHOOK_POLL_S (at once again after a busy pass) until stopped."""

    name = "webhooks"

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prefloop-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.WEBHOOK_TIMEOUT_S + 5)

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.WEBHOOK_TIMEOUT_S, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    sent = deliver_due(database=self.database, settings=self.settings, client=client)
                except Exception:  # a database hiccup must not end deliveries for the process's life
                    log.exception("webhook dispatcher pass failed; retrying")
                    sent = 0
                if sent == 0:
                    self._stop.wait(self.settings.WEBHOOK_POLL_S)
