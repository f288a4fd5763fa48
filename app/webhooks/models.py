"""Webhook endpoints an admin registers, and the outbox of deliveries to them.

An event is written to the outbox in the same transaction as the change it reports (so a rolled-back
change sends nothing and a committed one is never lost); the dispatcher delivers it afterwards.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin


class WebhookEvent(enum.StrEnum):
    judgment_created = "judgment.created"
    comparison_completed = "comparison.completed"
    round_finished = "round.finished"
    policy_activated = "policy.activated"
    rollout_finished = "rollout.finished"
    # Sent only by "test this endpoint"; no endpoint subscribes to it.
    ping = "ping"


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    # Given up after WEBHOOK_MAX_ATTEMPTS; last_error says why. An admin can retry it.
    failed = "failed"


URL_MAX_CHARS = 2000


class WebhookEndpoint(CreatedAtMixin, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_CHARS))
    # The signing secret, Fernet-encrypted (see crypto.py); shown to the admin in the clear only once.
    encrypted_secret: Mapped[str] = mapped_column(String(255))
    # Its first characters, to tell secrets apart in listings without decrypting them.
    secret_prefix: Mapped[str] = mapped_column(String(16))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200), default="")
    is_active: Mapped[bool] = mapped_column(default=True)


class WebhookDelivery(CreatedAtMixin, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    # The exact JSON text that is sent and signed, fixed when the event happened.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=16), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # When the dispatcher may (re)try it; also pushed ahead while an attempt is in flight (a lease).
    next_attempt_at: Mapped[datetime]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None]
