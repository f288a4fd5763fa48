"""JSON API for webhook endpoints: create (the secret is shown once), list, change, delete, test, and
inspect or retry deliveries. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import ApiAdmin, IdPath, SessionDep, SettingsDep

from . import service
from .models import DeliveryStatus, WebhookEndpoint
from .schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate

router = APIRouter(prefix="/webhooks")


def _read(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        is_active=endpoint.is_active,
        created_at=endpoint.created_at,
        secret_prefix=endpoint.secret_prefix,
    )


@router.get("", response_model=list[WebhookRead])
def list_webhooks(db: SessionDep, _admin: ApiAdmin) -> list[WebhookRead]:
    """Every webhook endpoint (secrets are not shown)."""
    return [_read(e) for e in service.list_(db=db)]


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
def create_webhook(body: WebhookCreate, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin) -> WebhookCreated:
    """Register an endpoint (internal addresses are refused). The response holds its signing secret, once."""
    endpoint, secret = service.create(
        db=db, settings=settings, url=str(body.url), events=body.events, description=body.description
    )
    return WebhookCreated(**_read(endpoint).model_dump(), secret=secret)


@router.get("/{webhook_id}", response_model=WebhookRead)
def read_webhook(webhook_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> WebhookRead:
    """One endpoint."""
    return _read(service.get_or_raise(db=db, endpoint_id=webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookRead)
def update_webhook(
    webhook_id: IdPath, body: WebhookUpdate, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin
) -> WebhookRead:
    """Change the URL, events or description, or pause (is_active=false) and resume deliveries."""
    endpoint = service.get_or_raise(db=db, endpoint_id=webhook_id)
    return _read(
        service.update_endpoint(
            db=db,
            settings=settings,
            endpoint=endpoint,
            url=str(body.url) if body.url else None,
            events=body.events,
            description=body.description,
            is_active=body.is_active,
        )
    )


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> Response:
    """Remove an endpoint and its queued deliveries."""
    service.delete_endpoint(db=db, endpoint=service.get_or_raise(db=db, endpoint_id=webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookCreated)
def rotate_webhook_secret(
    webhook_id: IdPath, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin
) -> WebhookCreated:
    """Replace the signing secret; the response holds the new one, once."""
    endpoint = service.get_or_raise(db=db, endpoint_id=webhook_id)
    secret = service.rotate_secret(db=db, settings=settings, endpoint=endpoint)
    return WebhookCreated(**_read(endpoint).model_dump(), secret=secret)


@router.post("/{webhook_id}/test", response_model=DeliveryRead, status_code=status.HTTP_202_ACCEPTED)
def test_webhook(webhook_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> DeliveryRead:
    """Queue a 'ping' delivery to this endpoint; follow it in the deliveries list."""
    endpoint = service.get_or_raise(db=db, endpoint_id=webhook_id)
    return DeliveryRead.model_validate(service.send_test(db=db, endpoint=endpoint))


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryRead])
def list_webhook_deliveries(
    webhook_id: IdPath,
    db: SessionDep,
    _admin: ApiAdmin,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[DeliveryRead]:
    """The endpoint's deliveries, newest first, with attempts and the last error."""
    endpoint = service.get_or_raise(db=db, endpoint_id=webhook_id)
    return [
        DeliveryRead.model_validate(d)
        for d in service.list_deliveries(db=db, endpoint=endpoint, status=status, limit=limit)
    ]


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry_webhook_delivery(webhook_id: IdPath, delivery_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> DeliveryRead:
    """Send a delivery again now with a fresh attempt budget (a delivered one is left as it is)."""
    endpoint = service.get_or_raise(db=db, endpoint_id=webhook_id)
    return DeliveryRead.model_validate(service.retry_delivery(db=db, endpoint=endpoint, delivery_id=delivery_id))
