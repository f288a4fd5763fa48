"""Components that run beside the web server for its whole life (started and stopped by the lifespan)."""

from __future__ import annotations

import logging
from typing import Protocol

from app.core.config import Settings
from app.core.db import Database
from app.sampler.worker import SamplerWorker
from app.training.worker import LocalWorker
from app.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("prefloop.background")


class BackgroundComponent(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_components(settings: Settings, db: Database) -> list[BackgroundComponent]:
    """What the embedded deployment runs in-process (the sampler, a local worker) per settings."""
    components: list[BackgroundComponent] = []
    if settings.SAMPLER_ENABLED:
        components.append(SamplerWorker(settings, db))
    if settings.WORKER_ENABLED:
        components.append(LocalWorker(settings))
    if settings.WEBHOOKS_ENABLED:
        components.append(WebhookDispatcher(settings, db))
    return components
