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
    # a row the channel sends as several messages (WhatsApp: text, then buttons): how many of
    # them it has accepted, so that a retry or a restart sends only the rest
    parts_sent: int = Field(default=0, ge=0)
    # WhatsApp: the 24-hour window is closed, send the row as its approved template
    as_template: bool = False
    # the channel's receipts (WhatsApp statuses): sent, delivered, read or failed, and when
    delivery_status: str | None = Field(default=None, max_length=16)
    delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SentMessage(SQLModel, table=True):
    """One message a channel accepted for an outbox row (WhatsApp's wamid), and the receipts it
    reported for it. A receipt may come before the send's own answer: then it is kept here
    without `outbox_id` until the sender records the message."""

    __tablename__ = "sent_messages"
    __table_args__ = (
        sa.UniqueConstraint("channel", "external_id", name="uq_sent_messages_external"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel = Field(sa_type=str_enum(Channel))
    external_id: str = Field(max_length=128)
    outbox_id: int | None = Field(
        default=None, foreign_key="outbox.id", index=True, ondelete="CASCADE"
    )
    part: int = Field(default=0, ge=0)
    status: str | None = Field(default=None, max_length=16)  # the furthest receipt
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error_code: int | None = None
    error_title: str | None = Field(default=None, max_length=300)
    created_at: datetime = Stamped()
