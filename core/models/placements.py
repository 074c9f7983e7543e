"""Orders waiting to be placed on a route by the autopilot (core.dispatch.autopilot).

A row exists while its order waits for a driver (new or rescheduled): it is written in the same
transaction as the order change that made the order wait, and removed in the one that moves the
order on, so a crash between creation and placement leaves the row to be picked up on restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.types import Stamped, UTCDateTime


class Placement(SQLModel, table=True):
    __tablename__ = "placements"

    order_id: int = Field(foreign_key="orders.id", primary_key=True)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: at once
    parked: bool = False  # nobody could take it: waits for a driver, a plan time or a change
    alerted: bool = False  # the dispatchers were told it is unassignable (since it last changed)
    lease_token: str | None = Field(default=None, max_length=32)  # the worker placing it now
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Stamped()
