"""The FastAPI app and the service's composition root."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from core.bootstrap import Services
from core.channels import channel_states
from core.clock import Clock, system_clock
from core.config import Settings
from core.db import Database
from core.jobs import service_jobs
from core.merchants.sender import WebhookSender
from core.scheduler import Scheduler
from core.storage import StorageRefused
from core.tracking.live import LiveFeed
from web import errors, limits
from web.routes import (
    api,
    board,
    driver,
    health,
    home,
    proofs,
    sandbox,
    sign,
    tracking,
    webhooks,
)

log = logging.getLogger("lastmile")
STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings,
    db: Database | None = None,
    *,
    clock: Clock | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    whatsapp_http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Build the app; the database, core services, chat channels and scheduler start with it.
    `webhook_transport` replaces the network for merchant webhooks (tests whose receivers'
    URLs are made up); `whatsapp_http`: the HTTP client the WhatsApp channel talks to the Graph
    API with (default: its own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database(
            settings.database_url,
            echo=settings.database.echo,
            clock=clock or system_clock,
            pool_size=settings.database.pool_size,
            max_overflow=settings.database.max_overflow,
        )
        services = Services.build(settings, database, clock=clock)
        app.state.db = database
        app.state.services = services
        app.state.live = LiveFeed(database)
        app.state.telegram = None
        app.state.sandbox = None
        app.state.whatsapp = None
        app.state.webhooks = WebhookSender(
            database,
            settings.webhooks,
            transport=webhook_transport,
            clock=services.clock,
            lease=settings.outbox.lease,
        )
        app.state.scheduler = Scheduler(database, service_jobs(services), clock=services.clock)
        for channel in channel_states(settings):
            log.info(channel.line())
        try:
            try:  # a wrong bucket or wrong keys: refuse to start, saying which
                await services.files.check()
            except StorageRefused as exc:
                log.error("cannot start: %s", exc)
                raise
            services.files.start()  # uploads what the object store could not take at once
            if settings.telegram.enabled:
                from bot.telegram.app import TelegramChannel

                app.state.telegram = TelegramChannel(services)
                await app.state.telegram.start()
            if settings.whatsapp.enabled:
                from bot.whatsapp.channel import WhatsAppChannel

                app.state.whatsapp = WhatsAppChannel(services, http=whatsapp_http)
                app.state.whatsapp.start()
            if settings.sandbox:
                from bot.sandbox.channel import SandboxChannel

                app.state.sandbox = SandboxChannel(services)
                app.state.sandbox.start()
            app.state.webhooks.start()
            services.autopilot.start()  # DISPATCH_MODE=auto: orders are placed as they arrive
            app.state.scheduler.start()
            # what startup made lives as long as the process: keep it out of the collector's
            # full passes (they took ~200 ms with aiogram's objects in them)
            gc.freeze()
            yield
        finally:
            await app.state.scheduler.stop()
            await services.autopilot.stop()
            await app.state.webhooks.stop()
            if app.state.sandbox is not None:
                await app.state.sandbox.stop()
            if app.state.whatsapp is not None:
                await app.state.whatsapp.stop()
            if app.state.telegram is not None:
                await app.state.telegram.stop()
            await app.state.live.close()
            await services.close()
            if db is None:
                await database.dispose()

    app = FastAPI(title="Lastmile", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(limits.BodyLimit)
    app.add_middleware(api.KeyFirst)  # added last, runs first: no key, nothing read
    app.add_exception_handler(Exception, errors.server_error)
    app.add_exception_handler(413, limits.too_large)
    app.add_exception_handler(RequestValidationError, api.invalid_request)
    app.include_router(home.router)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(tracking.router)
    app.include_router(proofs.router)
    app.include_router(sign.router)
    app.include_router(driver.router)
    app.include_router(sandbox.router)
    app.include_router(board.router)
    # Leaflet (vendored with its licence) for the tracking page and the board: no CDN
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
