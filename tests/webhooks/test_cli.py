"""`prefloop webhooks deliver`, the sender of deployments whose web server runs no background work."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.webhooks import service
from app.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent


def test_deliver_once_sends_what_is_due(settings, db, receiver):
    with db.session() as s:
        service.create(db=s, settings=settings, url=receiver.url, events=[WebhookEvent.round_finished])
        service.emit(db=s, event=WebhookEvent.round_finished, payload={"round_id": 1})
    env = {
        "PREFLOOP_DATABASE_URL": settings.database_url,
        "PREFLOOP_DATA_DIR": str(settings.DATA_DIR),
        "PREFLOOP_SECRET_KEY": settings.SECRET_KEY,
        "PREFLOOP_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    }
    result = CliRunner().invoke(cli, ["webhooks", "deliver", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "made 1 delivery attempts" in result.output
    with db.session() as s:
        assert s.scalars(select(WebhookDelivery)).one().status == DeliveryStatus.delivered
    assert len(receiver.received) == 1
