"""What drivers send from the road: location pings and proofs of delivery."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import ProofKind
from core.models.types import Stamped, UTCDateTime, str_enum


class LocationPing(SQLModel, table=True):
    __tablename__ = "location_pings"
    __table_args__ = (
        sa.Index("ix_location_pings_driver_time", "driver_id", "recorded_at"),
        sa.Index("ix_location_pings_recorded_at", "recorded_at"),  # the reports read a day
    )

    id: int | None = Field(default=None, primary_key=True)
    driver_id: int = Field(foreign_key="drivers.id")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = None
    heading: int | None = None
    speed_mps: float | None = None
    live: bool = False
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Stamped()


class Proof(SQLModel, table=True):
    """Proof of delivery: the channel's file reference and our own stored copy."""

    __tablename__ = "proofs"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "idempotency_key", name="uq_proofs_idempotency"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    driver_id: int | None = Field(default=None, foreign_key="drivers.id")
    kind: ProofKind = Field(sa_type=str_enum(ProofKind))
    channel_file_id: str | None = Field(default=None, max_length=255)
    stored_path: str | None = Field(default=None, max_length=500)
    sha256: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = Field(default=None, ge=0)
    content_type: str | None = Field(default=None, max_length=100)
    signature_path: str | None = Field(default=None, max_length=500)  # the drawn strokes as SVG
    signature_sha256: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=64)  # the pad's, per submit
    recipient_name: str | None = Field(default=None, max_length=200)
    pin_checked: bool = False
    lat: float | None = None
    lon: float | None = None
    captured_at: datetime = Stamped()
