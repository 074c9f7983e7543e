"""Planned routes and their stops, with planned and actual times.

A stop is open until its visit ends (`actual_departure` is set: delivered, failed, picked up).
Visits that happened stay as history; an order has at most one open stop of each kind.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from core.models.enums import RouteStatus, StopKind
from core.models.types import Stamped, UTCDateTime, str_enum


class Route(SQLModel, table=True):
    __tablename__ = "routes"

    id: int | None = Field(default=None, primary_key=True)
    driver_id: int = Field(foreign_key="drivers.id", index=True)
    depot_id: int | None = Field(default=None, foreign_key="depots.id")
    service_date: date = Field(index=True)
    status: RouteStatus = Field(default=RouteStatus.PLANNED, sa_type=str_enum(RouteStatus))
    engine: str | None = Field(default=None, max_length=20)
    planned_distance_m: int | None = None
    planned_duration_s: int | None = None
    planned_drive_s: int | None = None  # seconds behind the wheel in the saved plan
    created_at: datetime = Stamped()
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


OPEN_STOP = "actual_departure IS NULL"


class RouteStop(SQLModel, table=True):
    __tablename__ = "route_stops"
    __table_args__ = (
        sa.Index(
            "uq_route_stops_open",
            "order_id",
            "kind",
            unique=True,
            sqlite_where=sa.text(OPEN_STOP),
            postgresql_where=sa.text(OPEN_STOP),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    route_id: int = Field(foreign_key="routes.id", index=True, ondelete="CASCADE")
    order_id: int = Field(foreign_key="orders.id", index=True)
    kind: StopKind = Field(default=StopKind.DELIVERY, sa_type=str_enum(StopKind))
    sequence: int = Field(ge=0)
    planned_arrival: datetime | None = Field(default=None, sa_type=UTCDateTime)
    planned_departure: datetime | None = Field(default=None, sa_type=UTCDateTime)
    eta: datetime | None = Field(default=None, sa_type=UTCDateTime)
    actual_arrival: datetime | None = Field(default=None, sa_type=UTCDateTime)
    actual_departure: datetime | None = Field(default=None, sa_type=UTCDateTime)


def open_stop() -> sa.ColumnElement[bool]:
    """The stop still to be visited (or being visited): at most one per order and kind."""
    return col(RouteStop.actual_departure).is_(None)


class PlannedBreak(SQLModel, table=True):
    """A break the product planned for a driver (it starts at `starts_at`, `seconds` long):
    remembered, so that a rest she took when told is counted as taken even when her taps
    around it leave a gap a little short of it (`core.drivers.rests`)."""

    __tablename__ = "planned_breaks"

    id: int | None = Field(default=None, primary_key=True)
    driver_id: int = Field(foreign_key="drivers.id", index=True, ondelete="CASCADE")
    starts_at: datetime = Field(sa_type=UTCDateTime)
    seconds: int = Field(gt=0)
    created_at: datetime = Stamped()
