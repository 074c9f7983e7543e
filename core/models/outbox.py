"""Channel-neutral notifications waiting to be delivered (the transactional outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import Channel, OutboxStatus
from core.models.types import JSON, Stamped, UTCDateTime, str_enum


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    recipient_member_id: int = Field(foreign_key="members.id", index=True)
    channel: Channel | None = Field(default=None, sa_type=str_enum(Channel))
    template: str = Field(max_length=80)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    actions: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    idempotency_key: str = Field(max_length=200, unique=True)
    order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=str_enum(OutboxStatus))
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: datetime = Stamped()
    lease_token: str | None = Field(default=None, max_length=32)  # who holds it (core.leases)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Stamped()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
