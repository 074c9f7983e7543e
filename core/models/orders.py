"""Orders, their time windows, and the append-only audit of every change."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Field, SQLModel

from core.models.enums import OrderKind, OrderStatus, ProofKind, StopKind
from core.models.types import JSON, Stamped, UTCDateTime, str_enum

TRACKING_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")  # what new_tracking_token makes


def new_tracking_token() -> str:
    """144 random bits, URL-safe (24 characters)."""
    return secrets.token_urlsafe(18)


def is_tracking_token(text: str) -> bool:
    """Whether `text` could be a tracking token: anything else is refused before a query."""
    return TRACKING_TOKEN.fullmatch(text) is not None


def tracking_url(base_url: str, token: str) -> str:
    """The customer's tracking page for `token` on the site at `base_url`."""
    return f"{base_url.rstrip('/')}/t/{token}"


def order_ref(external_ref: str | None, order_id: int | None) -> str:
    """How people know an order: the shop's reference, else "#" and its number."""
    return external_ref or f"#{order_id}"


MAX_SERVICE_MINUTES = 240  # the longest service time an order may have


class Order(SQLModel, table=True):
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    external_ref: str | None = Field(default=None, max_length=100, unique=True)
    kind: OrderKind = Field(default=OrderKind.DELIVERY, sa_type=str_enum(OrderKind))
    customer_id: int = Field(foreign_key="customers.id", index=True)
    depot_id: int | None = Field(default=None, foreign_key="depots.id")
    driver_id: int | None = Field(default=None, foreign_key="drivers.id", index=True)
    driver_locked: bool = False  # a dispatcher chose the driver: re-plans keep it
    # the parcel left the depot in its driver's van: re-plans re-sequence it, never move it
    loaded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    zone: str | None = Field(default=None, max_length=50)
    address: str = Field(max_length=500)
    lat: float | None = None
    lon: float | None = None
    located_by: str | None = Field(default=None, max_length=20)
    pickup_address: str | None = Field(default=None, max_length=500)
    pickup_lat: float | None = None
    pickup_lon: float | None = None
    due_date: date | None = Field(default=None, index=True)
    service_minutes: float = Field(default=5.0, ge=0)
    weight_kg: float | None = Field(default=None, ge=0)
    volume_l: float | None = Field(default=None, ge=0)
    units: int | None = Field(default=None, ge=0)
    notes: str = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=0, le=2)
    required_skills: list[str] = Field(default_factory=list, sa_type=JSON)
    proof_required: ProofKind = Field(default=ProofKind.PHOTO, sa_type=str_enum(ProofKind))
    delivery_pin: str | None = Field(default=None, max_length=12)
    status: OrderStatus = Field(default=OrderStatus.NEW, sa_type=str_enum(OrderStatus), index=True)
    attempts: int = Field(default=0, ge=0)
    tracking_token: str = Field(default_factory=new_tracking_token, max_length=64, unique=True)
    source: str = Field(default="chat", max_length=20)
    api_key_id: int | None = Field(default=None, foreign_key="api_keys.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="members.id")
    created_at: datetime = Stamped(index=True)
    updated_at: datetime = Stamped()
    final_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rating: int | None = Field(default=None, ge=1, le=5)
    rating_comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrderWindow(SQLModel, table=True):
    """One time window of a stop; an order may have several (e.g. 9–12 or 15–18)."""

    __tablename__ = "order_windows"
    __table_args__ = (sa.CheckConstraint("ends_at > starts_at", name="window_ends_after_start"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    stop: StopKind = Field(default=StopKind.DELIVERY, sa_type=str_enum(StopKind))
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)


class OrderEvent(SQLModel, table=True):
    """Append-only: one row for every change of an order, who made it and when."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    kind: str = Field(max_length=40)
    from_status: OrderStatus | None = Field(default=None, sa_type=str_enum(OrderStatus))
    to_status: OrderStatus | None = Field(default=None, sa_type=str_enum(OrderStatus))
    actor_member_id: int | None = Field(default=None, foreign_key="members.id")
    actor: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Stamped(index=True)


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(OrderEvent, "before_update")
@event.listens_for(OrderEvent, "before_delete")
def _refuse_rewriting_history(mapper: Any, connection: Any, target: OrderEvent) -> None:
    raise AppendOnlyError(f"order event {target.id} is append-only")
