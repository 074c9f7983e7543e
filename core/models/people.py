"""Who uses Lastmile: members with roles and channel identities, depots, drivers, customers."""

from __future__ import annotations

from datetime import datetime, time

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import Channel, Role, ShiftState, VehicleType
from core.models.types import JSON, Stamped, UTCDateTime, str_enum


class Member(SQLModel, table=True):
    """A person who talks to Lastmile in chat. Roles are granted in `member_roles`."""

    __tablename__ = "members"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    language: str = Field(default="en", max_length=12)
    timezone: str | None = Field(default=None, max_length=64)
    telegram_user_id: int | None = Field(default=None, sa_type=sa.BigInteger, unique=True)
    telegram_chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    whatsapp_phone: str | None = Field(default=None, max_length=20, index=True)
    whatsapp_wa_id: str | None = Field(default=None, max_length=32, unique=True)
    whatsapp_user_id: str | None = Field(default=None, max_length=64, unique=True)
    telegram_blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # where she chose to be reached when she has several chats (`/here`, or the chat she opened
    # a link in last); None: Telegram, else WhatsApp, else another (core.notify.outbox)
    reach_channel: Channel | None = Field(default=None, sa_type=str_enum(Channel))
    active: bool = True
    reports_off: bool = False  # an owner who switched the pushed reports off (/reports off)
    created_at: datetime = Stamped()


class MemberRole(SQLModel, table=True):
    __tablename__ = "member_roles"

    member_id: int = Field(foreign_key="members.id", primary_key=True, ondelete="CASCADE")
    role: Role = Field(sa_type=str_enum(Role), primary_key=True)
    granted_at: datetime = Stamped()
    granted_by: int | None = Field(default=None, foreign_key="members.id")


class Depot(SQLModel, table=True):
    """A hub where routes start and end."""

    __tablename__ = "depots"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=500)
    lat: float
    lon: float
    timezone: str | None = Field(default=None, max_length=64)
    active: bool = True


class Driver(SQLModel, table=True):
    __tablename__ = "drivers"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id", unique=True)
    depot_id: int | None = Field(default=None, foreign_key="depots.id")
    vehicle_type: VehicleType = Field(default=VehicleType.CAR, sa_type=str_enum(VehicleType))
    capacity_kg: float | None = Field(default=None, ge=0)
    capacity_l: float | None = Field(default=None, ge=0)
    capacity_units: int | None = Field(default=None, ge=0)
    max_stops: int | None = Field(default=None, ge=1)
    skills: list[str] = Field(default_factory=list, sa_type=JSON)
    zones: list[str] = Field(default_factory=list, sa_type=JSON)
    shift_state: ShiftState = Field(default=ShiftState.OFF, sa_type=str_enum(ShiftState))
    shift_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shift_ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # her working hours, local, every day (`/hours`): before her shift starts the planner
    # counts on her from `hours_from`, and her route ends by `hours_until`
    hours_from: time | None = None
    hours_until: time | None = None
    last_lat: float | None = None
    last_lon: float | None = None
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    live_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # live sharing ends
    stale_alerted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Customer(SQLModel, table=True):
    """Someone who receives deliveries; linked to a member once they open a chat with us. A phone
    number (E.164) names one customer."""

    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=20, index=True, unique=True)
    member_id: int | None = Field(default=None, foreign_key="members.id", index=True)
    language: str | None = Field(default=None, max_length=12)
    created_at: datetime = Stamped()


class Shift(SQLModel, table=True):
    """One spell a driver was on shift: from `/shift` to the end of it (open while it lasts)."""

    __tablename__ = "shifts"
    __table_args__ = (sa.Index("ix_shifts_driver_started", "driver_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    driver_id: int = Field(foreign_key="drivers.id")
    started_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
