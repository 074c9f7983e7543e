"""The core services a running Lastmile needs, built once from the settings and shared by
every channel (Telegram, WhatsApp, the REST API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from core.clock import Clock, system_clock
from core.config import Settings
from core.db import Database
from core.dispatch.autopilot import Autopilot
from core.dispatch.planner import Planner
from core.drivers.positions import Positions
from core.drivers.stops import Stops
from core.geo.geocoding import Geocoder
from core.notify.alerts import Alerts
from core.policy import Policy
from core.routing.travel import provider_from_settings
from core.storage import Files, storage_from_settings
from core.tracking.links import Signer, secret_key

if TYPE_CHECKING:
    from core.conversations.engine import Conversations


@dataclass
class Services:
    settings: Settings
    db: Database
    planner: Planner
    positions: Positions
    stops: Stops
    geocoder: Geocoder
    autopilot: Autopilot
    alerts: Alerts
    files: Files
    clock: Clock = system_clock

    @classmethod
    def build(cls, settings: Settings, db: Database, *, clock: Clock | None = None) -> Services:
        """Everything built once. `clock` (the database's by default) becomes the database's
        too, so rows are stamped with the time every component reads."""
        if clock is None:
            clock = db.clock
        else:
            db.use_clock(clock)
        Policy.from_settings(settings).carried_by(db)
        osrm = str(settings.osrm.url) if settings.osrm.url else None
        travel = provider_from_settings(settings.routing, osrm, settings.app.timezone)
        planner = Planner(
            db, travel, settings.routing, settings.orders, clock=clock, zone=settings.app.timezone
        )
        stops = Stops(db, settings.orders)
        return cls(
            settings=settings,
            db=db,
            planner=planner,
            positions=Positions(db, planner, settings.tracking, clock=clock),
            stops=stops,
            geocoder=Geocoder(db, settings.geocoding, region=settings.app.phone_region),
            autopilot=Autopilot(db, planner, stops, settings, clock=clock),
            alerts=Alerts(db, settings.alerts, settings.app.timezone, clock=clock),
            files=Files(
                storage_from_settings(settings.storage, settings.app.data_dir),
                db,
                retry_s=settings.storage.retry_s,
            ),
            clock=clock,
        )

    @cached_property
    def signer(self) -> Signer:
        """Signs expiring links; the key is read (or made) on first use."""
        app = self.settings.app
        ttl = timedelta(minutes=app.proof_link_minutes)
        return Signer(secret_key(app), str(app.base_url), ttl)

    @cached_property
    def conversations(self) -> Conversations:
        """Every chat conversation, for every channel (built on first use)."""
        from core.conversations.engine import Conversations
        from core.conversations.state import state_store

        ttl = timedelta(minutes=self.settings.app.conversation_minutes)
        return Conversations(self, state_store(self.db, self.settings.redis.url, ttl))

    @property
    def undo_window(self) -> timedelta:
        return timedelta(minutes=self.settings.tracking.undo_minutes)

    async def close(self) -> None:
        await self.files.stop()
        await self.autopilot.stop()
        await self.positions.drain()
        await self.geocoder.close()
        if "conversations" in self.__dict__:
            await self.conversations.close()
