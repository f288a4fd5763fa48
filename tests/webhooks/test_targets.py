"""Webhooks cannot reach inside: internal targets are refused when an endpoint is saved and again at
every delivery, after resolving the name, connecting to the address that was checked; only hosts an
admin names in WEBHOOK_ALLOWED_HOSTS are exempt."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from app.webhooks import service, targets
from app.webhooks.dispatcher import deliver_due, make_client
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

URL = "/api/v1/webhooks"
PUBLIC = "93.184.215.14"  # a globally routable address; nothing here connects to it


@pytest.fixture
def settings(settings):
    """No allowed internal hosts (the package's conftest allows the local receiver's 127.0.0.1)."""
    return settings.model_copy(update={"WEBHOOK_ALLOWED_HOSTS": [], "WEBHOOK_TIMEOUT_S": 5.0})


@pytest.fixture
def dns(monkeypatch) -> dict[str, str]:
    """Names the system resolver answers from this table (others resolve as usual)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


INTERNAL = [
    ("http://localhost:8080/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),
    ("http://0x7f.1/hook", "loopback"),
    ("http://127.1/hook", "loopback"),
    ("http://017700000001/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[2002:7f00:1::1]/hook", "loopback"),  # 6to4 for 127.0.0.1
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://10.0.0.5/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://0.0.0.0:8000/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://100.64.0.1/hook", "non-public"),
    (f"http://user:password@{PUBLIC}/hook", "Credentials"),
]


@pytest.mark.parametrize(("url", "why"), INTERNAL)
def test_internal_targets_are_refused_at_creation(client, db, admin_token, url, why):
    response = client.post(URL, json={"url": url, "events": ["judgment.created"]}, headers=admin_token)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "url"] and why in error["msg"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_a_url_longer_than_stored_urls_once_normalised_is_a_422(client, admin_token):
    # Each non-ASCII character is percent-encoded to 9 characters: well under the input limit, over 2000 after.
    url = "https://hooks.example.com/" + "\u20ac" * 230
    response = client.post("/api/v1/webhooks", json={"url": url, "events": ["round.finished"]}, headers=admin_token)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "url"]


def test_a_name_that_resolves_inward_is_refused_at_creation_and_on_change(client, admin_token, dns):
    dns["hooks.example.com"], dns["metadata.example.com"] = PUBLIC, "169.254.169.254"
    created = client.post(
        URL, json={"url": "https://hooks.example.com/in", "events": ["judgment.created"]}, headers=admin_token
    )
    assert created.status_code == 201
    refused = client.post(
        URL, json={"url": "http://metadata.example.com/", "events": ["judgment.created"]}, headers=admin_token
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "url"]
    assert "metadata.example.com resolves to 169.254.169.254" in refused.json()["detail"][0]["msg"]
    moved = client.patch(
        f"{URL}/{created.json()['id']}", json={"url": "http://metadata.example.com/"}, headers=admin_token
    )
    assert moved.status_code == 422 and moved.json()["detail"][0]["loc"] == ["body", "url"]


def test_a_name_that_turns_inward_after_creation_fails_at_delivery_without_a_request(db, settings, receiver, dns):
    # DNS rebinding: public when the endpoint was saved, the receiver's loopback address at delivery.
    port = receiver.url.split(":")[2].split("/")[0]
    dns["rebind.example.com"] = PUBLIC
    with db.session() as s:
        service.create(
            db=s,
            settings=settings,
            url=f"http://rebind.example.com:{port}/hook",
            events=[WebhookEvent.judgment_created],
        )
        service.emit(db=s, event=WebhookEvent.judgment_created, payload={"judgment_id": 1})
    dns["rebind.example.com"] = "127.0.0.1"
    later = datetime.now(UTC) + timedelta(minutes=1)
    with make_client(settings) as http:
        assert deliver_due(database=db, settings=settings, client=http, clock=lambda: later) == 1
        # refused for good: not retried on later passes
        assert deliver_due(database=db, settings=settings, client=http, clock=lambda: later + timedelta(days=1)) == 0
    with db.session() as s:
        delivery = s.scalars(select(WebhookDelivery)).one()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.failed, 1, None)
    assert delivery.last_error.startswith("Refused: rebind.example.com resolves to 127.0.0.1")
    assert receiver.received == []


def test_an_allowed_internal_host_is_reached(db, settings, receiver):
    allowed = settings.model_copy(update={"WEBHOOK_ALLOWED_HOSTS": ["localhost"]})
    local_url = receiver.url.replace("127.0.0.1", "localhost")
    with db.session() as s:
        service.create(db=s, settings=allowed, url=local_url, events=[WebhookEvent.judgment_created])
        service.emit(db=s, event=WebhookEvent.judgment_created, payload={"judgment_id": 1})
        with pytest.raises(service.Unprocessable):  # the name is allowed, not what it resolves to
            service.check_url(settings=allowed, url=receiver.url)
    later = datetime.now(UTC) + timedelta(minutes=1)
    with make_client(allowed) as http:
        assert deliver_due(database=db, settings=allowed, client=http, clock=lambda: later) == 1
    with db.session() as s:
        assert s.scalars(select(WebhookDelivery)).one().status == DeliveryStatus.delivered
    assert len(receiver.received) == 1


def test_delivery_connects_to_the_checked_address_with_the_name_in_host_and_sni():
    seen: list[httpx.Request] = []
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [PUBLIC] if len(lookups) == 1 else ["127.0.0.1"]  # a second answer would turn inward

    def connect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport = targets.GuardedTransport(allowed_hosts=[], resolver=resolver, connect=httpx.MockTransport(connect))
    with httpx.Client(transport=transport) as http:
        assert http.post("https://hooks.example.com:8443/in?x=1", content=b"{}").status_code == 204
    [request] = seen
    assert lookups == ["hooks.example.com"]
    assert str(request.url) == f"https://{PUBLIC}:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_redirects_are_not_followed(db, settings, receiver):
    allowed = settings.model_copy(update={"WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1"]})
    receiver.statuses = [302]  # to another path of the same receiver, which would then answer 200
    with db.session() as s:
        service.create(db=s, settings=allowed, url=receiver.url, events=[WebhookEvent.judgment_created])
        service.emit(db=s, event=WebhookEvent.judgment_created, payload={"judgment_id": 1})
    later = datetime.now(UTC) + timedelta(minutes=1)
    with make_client(allowed) as http:
        assert deliver_due(database=db, settings=allowed, client=http, clock=lambda: later) == 1
    with db.session() as s:
        delivery = s.scalars(select(WebhookDelivery)).one()
    assert len(receiver.received) == 1
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.pending, "HTTP 302 Found")
