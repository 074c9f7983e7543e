"""Webhook bodies a chat platform posted to us, kept before they are answered (WhatsApp: stored,
answered 200 at once, then processed by the channel's worker under a lease like the outbox's),
and the ids of what was already processed in them (a body sent again is processed once)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import Channel, OutboxStatus
from core.models.types import Stamped, UTCDateTime, str_enum


class InboundBody(SQLModel, table=True):
    __tablename__ = "inbound_bodies"
    __table_args__ = (
        sa.UniqueConstraint("channel", "body_sha256", name="uq_inbound_bodies_hash"),
        sa.Index("ix_inbound_bodies_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel = Field(sa_type=str_enum(Channel))
    body_sha256: str = Field(max_length=64)
    body: bytes = Field(sa_type=sa.LargeBinary)
    # pending (to process), sending (a worker holds it: core.leases), sent (processed), dead
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=str_enum(OutboxStatus))
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: datetime = Stamped()
    lease_token: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=1000)
    received_at: datetime = Stamped()
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InboundSeen(SQLModel, table=True):
    """A message taken in hand (`done` once processed), by the body that carried it first."""

    __tablename__ = "inbound_seen"

    key: str = Field(primary_key=True, max_length=200)  # "<channel>:<message id>"
    body_id: int = Field(foreign_key="inbound_bodies.id", ondelete="CASCADE", index=True)
    done: bool = False
    created_at: datetime = Stamped()
