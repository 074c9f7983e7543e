"""Merchant webhooks: one delivery per order event and API key, and a log of every attempt."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import OutboxStatus
from core.models.types import Stamped, UTCDateTime, str_enum


class WebhookDelivery(SQLModel, table=True):
    """A status change on its way to a merchant's URL. The body is fixed when the change is
    saved, so every retry sends (and signs) the same bytes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("api_key_id", "event_id", name="uq_webhook_key_event"),
        sa.Index("ix_webhook_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", index=True, ondelete="CASCADE")
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    event_id: int = Field(foreign_key="order_events.id")
    event_type: str = Field(max_length=40)
    body: str = Field(sa_type=sa.Text)
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, sa_type=str_enum(OutboxStatus))
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: datetime = Stamped()
    lease_token: str | None = Field(default=None, max_length=32)  # who holds it (core.leases)
    retry_until: datetime = Field(sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Stamped()
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One try at delivering a webhook: where to, what came back, how long it took."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_deliveries.id", index=True, ondelete="CASCADE")
    attempted_at: datetime = Stamped()
    url: str = Field(max_length=2000)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    response_excerpt: str | None = Field(default=None, max_length=500)
    duration_ms: int = Field(default=0, ge=0)
