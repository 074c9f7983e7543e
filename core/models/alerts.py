"""Exception alerts to dispatchers that are open: one row per condition (kind + subject) while it
holds (core.notify.alerts). The row is the "told once": it is written with the alert and
deleted when the condition clears, so a condition that comes back is told again."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.types import Stamped


class OpenAlert(SQLModel, table=True):
    __tablename__ = "open_alerts"
    __table_args__ = (sa.UniqueConstraint("kind", "subject", name="uq_open_alerts_kind_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)  # e.g. "order_unassigned", "driver_idle"
    subject: int  # the order or driver it is about
    opened_at: datetime = Stamped()
