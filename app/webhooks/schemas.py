"""Request and response shapes for webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

from app.core.text import Text

from .models import URL_MAX_CHARS, DeliveryStatus, WebhookEvent

SUBSCRIBABLE = [e for e in WebhookEvent if e != WebhookEvent.ping]


def _subscribable(events: list[WebhookEvent]) -> list[WebhookEvent]:
    if WebhookEvent.ping in events:
        raise ValueError(
            "'ping' is sent by the test action only; subscribe to: " + ", ".join(e.value for e in SUBSCRIBABLE)
        )
    return events


Events = Annotated[
    list[WebhookEvent],
    AfterValidator(_subscribable),
    Field(min_length=1, max_length=len(SUBSCRIBABLE), description="Event types to receive."),
]


def _storable(url: HttpUrl) -> HttpUrl:
    # Checked on the normalised form: it percent-encodes non-ASCII characters, so it can be longer than
    # what was sent.
    if len(str(url)) > URL_MAX_CHARS:
        raise ValueError(f"URL must be at most {URL_MAX_CHARS} characters once normalised")
    return url


ReceiverUrl = Annotated[HttpUrl, AfterValidator(_storable)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: ReceiverUrl = Field(description="Where deliveries are POSTed (http or https).")
    events: Events
    description: Text = Field("", max_length=200)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: ReceiverUrl | None = None
    events: Events | None = None
    description: Text | None = Field(None, max_length=200)
    is_active: bool | None = None


class WebhookRead(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    is_active: bool
    created_at: datetime
    secret_prefix: str = Field(description="The secret's first characters, to tell secrets apart.")


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret. It is shown only once; store it now.")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
