"""`prefloop webhooks deliver`: the dispatcher as its own process, for deployments whose web server
does not run it (docker-compose sets PREFLOOP_RUN_BACKGROUND=false and runs this as a service)."""

from __future__ import annotations

import signal
import threading

import typer

from app.core.config import get_settings
from app.core.db import Database

webhooks_cli = typer.Typer(help="Webhook deliveries.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(webhooks_cli, name="webhooks")


@webhooks_cli.command("deliver")
def deliver(once: bool = typer.Option(False, "--once", help="Send what is due now, then exit.")) -> None:
    """Send due webhook deliveries until stopped (SIGTERM). Several of these, and web processes that
    deliver too, can run at once: each delivery is claimed by one of them."""
    from app.webhooks import dispatcher

    settings = get_settings()
    db = Database(settings.database_url)
    try:
        if once:
            with dispatcher.make_client(settings) as client:
                made = dispatcher.deliver_due(database=db, settings=settings, client=client)
            typer.echo(f"made {made} delivery attempts")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        dispatcher.run(settings=settings, database=db, stop=stop)
    finally:
        db.dispose()
