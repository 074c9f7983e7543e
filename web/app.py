"""The FastAPI app and the service's composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.config import Settings
from core.db import Database
from web.routes import health

log = logging.getLogger("lastmile")


def channel_status(settings: Settings) -> list[str]:
    """One line per chat channel saying whether it runs and, if not, how to enable it."""
    lines = []
    if settings.telegram.enabled:
        lines.append("Telegram: TELEGRAM_BOT_TOKEN is set, but this build has no channel for it")
    else:
        lines.append("Telegram: not configured; set TELEGRAM_BOT_TOKEN to enable it")
    if settings.whatsapp.enabled:
        lines.append("WhatsApp: WHATSAPP_ACCESS_TOKEN is set, but this build has no channel for it")
    else:
        lines.append(
            "WhatsApp: not configured; set WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID "
            "and WHATSAPP_APP_SECRET to enable it"
        )
    return lines


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the app; the database is created (or the given one used) when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database(settings.database_url, echo=settings.database.echo)
        app.state.db = database
        for line in channel_status(settings):
            log.info(line)
        try:
            yield
        finally:
            if db is None:
                await database.dispose()

    app = FastAPI(title="Lastmile", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(health.router)
    return app
