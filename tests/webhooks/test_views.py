"""The webhook admin API: the secret is shown once, bad input is a precise 4xx, deliveries are visible."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.webhooks import crypto
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

URL = "/api/v1/webhooks"


def _create(client, headers, **body):
    return client.post(
        URL, json={"url": "http://127.0.0.1:9/hook", "events": ["judgment.created"], **body}, headers=headers
    )


def test_secret_is_shown_once(client, admin_token):
    created = _create(client, admin_token, description="notebook")
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["secret_prefix"] == body["secret"][:10]
    for listed in (
        client.get(URL, headers=admin_token).json()[0],
        client.get(f"{URL}/{body['id']}", headers=admin_token).json(),
    ):
        assert "secret" not in listed and listed["secret_prefix"] == body["secret_prefix"]
    rotated = client.post(f"{URL}/{body['id']}/rotate-secret", headers=admin_token).json()
    assert rotated["secret"] != body["secret"] and rotated["secret"].startswith("whsec_")


def test_secret_is_stored_encrypted_under_the_app_key(client, db, settings, admin_token):
    secret = _create(client, admin_token).json()["secret"]
    with db.session() as s:
        stored = s.scalars(select(WebhookEndpoint.encrypted_secret)).one()
    assert secret not in stored and secret[6:14] not in stored
    assert crypto.decrypt(settings.secret_key, stored) == secret
    with pytest.raises(crypto.InvalidToken):
        crypto.decrypt("another-secret-key", stored)


def test_update_and_delete(client, db, admin_token):
    hook = _create(client, admin_token).json()
    client.post(f"{URL}/{hook['id']}/test", headers=admin_token)
    changed = client.patch(
        f"{URL}/{hook['id']}",
        json={"events": ["round.finished", "policy.activated"], "is_active": False},
        headers=admin_token,
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["is_active"]) == (
        ["policy.activated", "round.finished"],
        False,
    )
    assert client.delete(f"{URL}/{hook['id']}", headers=admin_token).status_code == 204
    assert client.get(f"{URL}/{hook['id']}", headers=admin_token).status_code == 404
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "not a url"}, ["body", "url"]),
        ({"url": "ftp://example.com/x"}, ["body", "url"]),
        ({"events": []}, ["body", "events"]),
        ({"events": ["judgment.deleted"]}, ["body", "events", 0]),
        ({"events": ["ping"]}, ["body", "events"]),
        ({"secret": "mine"}, ["body", "secret"]),
    ],
)
def test_bad_webhooks_are_422_naming_the_field_and_store_nothing(client, db, admin_token, body, loc):
    response = _create(client, admin_token, **body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_unknown_webhook_and_delivery_are_404(client, admin_token):
    assert client.patch(f"{URL}/99", json={"is_active": False}, headers=admin_token).status_code == 404
    hook = _create(client, admin_token).json()
    missing = client.post(f"{URL}/{hook['id']}/deliveries/99/retry", headers=admin_token)
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "delivery_id"]


def test_test_action_queues_a_ping_listed_in_deliveries(client, admin_token):
    hook = _create(client, admin_token).json()
    queued = client.post(f"{URL}/{hook['id']}/test", headers=admin_token)
    assert queued.status_code == 202 and queued.json()["event"] == "ping"
    deliveries = client.get(f"{URL}/{hook['id']}/deliveries", params={"status": "pending"}, headers=admin_token)
    assert [d["id"] for d in deliveries.json()] == [queued.json()["id"]]
    assert client.get(f"{URL}/{hook['id']}/deliveries", params={"limit": 0}, headers=admin_token).status_code == 422


def test_annotators_cannot_manage_webhooks(client, annotator_token):
    assert client.get(URL, headers=annotator_token).status_code == 403
    assert _create(client, annotator_token).status_code == 403
