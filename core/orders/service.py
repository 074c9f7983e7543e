"""Creating orders and changing their status: the service every channel calls."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import OrdersSettings
from core.db import Database
from core.errors import DomainError
from core.models import Order, OrderEvent, OrderKind, OrderStatus, ProofKind
from core.models.orders import MAX_SERVICE_MINUTES
from core.orders import lifecycle
from core.orders.lifecycle import Actor, Change, Window
from core.people.customers import find_or_add_customer
from core.validation import Text

K = TypeVar("K")


class OrderDraft(BaseModel):
    """A new order as a person or a system describes it, validated before anything is saved."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    external_ref: Text | None = Field(default=None, max_length=100)
    customer_name: Text = Field(min_length=1, max_length=200)
    customer_phone: Text | None = None
    customer_language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$")
    address: Text = Field(min_length=1, max_length=500)
    lat: float | None = None
    lon: float | None = None
    pickup_address: Text | None = Field(default=None, max_length=500)
    pickup_lat: float | None = None
    pickup_lon: float | None = None
    due_date: date | None = None
    windows: tuple[Window, ...] = ()
    service_minutes: float | None = Field(default=None, ge=0, le=MAX_SERVICE_MINUTES)
    weight_kg: float | None = Field(default=None, ge=0)
    volume_l: float | None = Field(default=None, ge=0)
    units: int | None = Field(default=None, ge=0)
    notes: Text = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=0, le=2)
    required_skills: tuple[Text, ...] = ()
    zone: Text | None = Field(default=None, max_length=50)
    proof_required: ProofKind = ProofKind.PHOTO
    delivery_pin: str | None = Field(default=None, pattern=r"^\d{4,8}$")

    @field_validator("lat", "pickup_lat")
    @classmethod
    def _latitude(cls, value: float | None) -> float | None:
        if value is not None and not -90 <= value <= 90:
            raise ValueError(f"{value} is outside -90…90")
        return value

    @field_validator("lon", "pickup_lon")
    @classmethod
    def _longitude(cls, value: float | None) -> float | None:
        if value is not None and not -180 <= value <= 180:
            raise ValueError(f"{value} is outside -180…180")
        return value

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({skill.strip().lower() for skill in value if skill.strip()}))

    @model_validator(mode="after")
    def _points_are_whole(self) -> OrderDraft:
        for prefix in ("", "pickup_"):
            lat, lon = getattr(self, f"{prefix}lat"), getattr(self, f"{prefix}lon")
            if (lat is None) != (lon is None):
                raise ValueError(f"give both {prefix}lat and {prefix}lon, or neither")
            if lat == 0 and lon == 0:
                raise ValueError(f"{prefix}lat/{prefix}lon 0,0 is in the ocean, not an address")
        if (self.pickup_lat is not None) and not self.pickup_address:
            raise ValueError("a pickup point needs a pickup_address")
        return self

    @property
    def kind(self) -> OrderKind:
        return OrderKind.PICKUP_DELIVERY if self.pickup_address else OrderKind.DELIVERY


def normalize_phone(text: str, region: str | None) -> str:
    """E.164 (+4915112345678), or a DomainError saying what is wrong with it."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise DomainError("error.phone_unreadable", phone=text) from None
    if not phonenumbers.is_valid_number(number):
        raise DomainError("error.phone_invalid", phone=text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


WINDOW_TEXT = re.compile(
    r"^\s*(?:(?P<date>\d{4}-\d{2}-\d{2})|(?P<tomorrow>tomorrow))?\s*"
    r"(?P<h1>\d{1,2})(?::(?P<m1>\d{2}))?\s*[-–]\s*(?P<h2>\d{1,2})(?::(?P<m2>\d{2}))?\s*$",
    re.IGNORECASE,
)


def window_example(now: datetime, zone: ZoneInfo) -> str:
    """Tomorrow's date as a time window is written with one (2026-11-26)."""
    return (now.astimezone(zone).date() + timedelta(days=1)).isoformat()


def parse_window_text(text: str, now: datetime, zone: ZoneInfo) -> Window:
    """`14:00-16:00`, `9-12`, `tomorrow 9-12` or `2026-11-24 9:30-12`, in local time. Without
    a date it means today, or tomorrow when that window is already over today."""
    bad = DomainError("neworder.bad_window", text=text, example=window_example(now, zone))
    match = WINDOW_TEXT.match(text)
    if not match:
        raise bad
    today = now.astimezone(zone).date()
    try:
        day = date.fromisoformat(match["date"]) if match["date"] else today
        start = time(int(match["h1"]), int(match["m1"] or 0))
        end = time(int(match["h2"]), int(match["m2"] or 0))
    except ValueError:
        raise bad from None
    if match["tomorrow"]:
        day = today + timedelta(days=1)
    if end <= start:
        raise bad
    window = Window(datetime.combine(day, start, zone), datetime.combine(day, end, zone))
    if window.ends_at <= now:
        if match["date"]:
            raise DomainError("neworder.window_past", text=text)
        window = Window(window.starts_at + timedelta(days=1), window.ends_at + timedelta(days=1))
    return window


async def find_by_ref(session: AsyncSession, external_ref: str) -> Order | None:
    statement = select(Order).where(Order.external_ref == external_ref)
    return (await session.exec(statement)).first()


class DuplicateRef(DomainError):
    """The order's `external_ref` is saved already (`order_id` names that order)."""

    def __init__(self, ref: str, order_id: int) -> None:
        super().__init__("error.duplicate_ref", ref=ref, order=order_id)
        self.order_id = order_id


async def _duplicate(session: AsyncSession, draft: OrderDraft) -> DuplicateRef | None:
    """The refusal for a draft whose reference is saved already, if it is."""
    if not draft.external_ref or (found := await find_by_ref(session, draft.external_ref)) is None:
        return None
    assert found.id is not None
    return DuplicateRef(draft.external_ref, found.id)


async def add_order(
    session: AsyncSession,
    draft: OrderDraft,
    actor: Actor,
    *,
    source: str,
    rules: OrdersSettings | None = None,
    api_key_id: int | None = None,
) -> Order:
    """Create the order in the caller's transaction (customer, windows, event, notifications).
    An `external_ref` saved already raises `DuplicateRef`, also when a concurrent transaction
    saved it first (the order is written on a savepoint, and the caller's transaction goes on)."""
    rules = rules or OrdersSettings()
    if duplicate := await _duplicate(session, draft):
        raise duplicate
    customer = await find_or_add_customer(
        session, draft.customer_name, draft.customer_phone, draft.customer_language
    )
    pin = draft.delivery_pin
    if draft.proof_required is ProofKind.PIN and pin is None:
        pin = f"{secrets.randbelow(10_000):04d}"
    assert customer.id is not None
    order = Order(
        external_ref=draft.external_ref,
        kind=draft.kind,
        customer_id=customer.id,
        address=draft.address,
        lat=draft.lat,
        lon=draft.lon,
        located_by=source if draft.lat is not None else None,
        pickup_address=draft.pickup_address,
        pickup_lat=draft.pickup_lat,
        pickup_lon=draft.pickup_lon,
        due_date=draft.due_date,
        service_minutes=(
            draft.service_minutes
            if draft.service_minutes is not None
            else rules.default_service_minutes
        ),
        weight_kg=draft.weight_kg,
        volume_l=draft.volume_l,
        units=draft.units,
        notes=draft.notes,
        priority=draft.priority,
        required_skills=list(draft.required_skills),
        zone=draft.zone or None,
        proof_required=draft.proof_required,
        delivery_pin=pin,
        source=source,
        api_key_id=api_key_id,
    )
    try:
        async with session.begin_nested():
            await lifecycle.create(session, order, draft.windows, actor)
    except IntegrityError:
        # PostgreSQL reports a taken reference once the transaction that took it committed
        if duplicate := await _duplicate(session, draft):
            raise duplicate from None
        raise
    return order


Outcome = tuple[int, bool] | str  # (order id, created now), or why it was refused


async def add_orders(
    session: AsyncSession,
    drafts: Sequence[tuple[K, OrderDraft]],
    actor: Actor,
    *,
    source: str,
    rules: OrdersSettings | None = None,
    api_key_id: int | None = None,
) -> dict[K, Outcome]:
    """Many orders in the caller's transaction, each on its own savepoint; per key, the outcome.
    An `external_ref` saved already (or earlier in `drafts`) creates nothing.

    Rows are written in one order whatever order they come in, customers by phone and then
    orders by reference, so two transactions adding overlapping orders wait for each other
    instead of deadlocking."""
    refs = [draft.external_ref for _, draft in drafts if draft.external_ref]
    statement = select(Order.external_ref, Order.id).where(col(Order.external_ref).in_(refs))
    saved = {
        ref: order_id
        for ref, order_id in (await session.exec(statement)).all()
        if order_id is not None
    }
    outcomes: dict[K, Outcome] = {}
    new = []
    for key, draft in drafts:
        if draft.external_ref in saved:
            outcomes[key] = (saved[draft.external_ref], False)
        else:
            new.append((key, draft))
    first_of_phone: dict[str, OrderDraft] = {}
    for _, draft in new:
        if draft.customer_phone:
            first_of_phone.setdefault(draft.customer_phone, draft)
    for phone, draft in sorted(first_of_phone.items()):
        await find_or_add_customer(session, draft.customer_name, phone, draft.customer_language)
    for key, draft in sorted(new, key=lambda item: item[1].external_ref or ""):
        try:
            async with session.begin_nested():
                order = await add_order(
                    session, draft, actor, source=source, rules=rules, api_key_id=api_key_id
                )
        except DuplicateRef as exc:
            outcomes[key] = (exc.order_id, False)
        except (DomainError, IntegrityError) as exc:
            outcomes[key] = str(exc).splitlines()[0]
        else:
            assert order.id is not None
            outcomes[key] = (order.id, True)
    return outcomes


async def create_order(
    db: Database,
    draft: OrderDraft,
    actor: Actor,
    *,
    source: str,
    rules: OrdersSettings | None = None,
) -> Order:
    async with db.transaction() as session:
        return await add_order(session, draft, actor, source=source, rules=rules)


async def change_status(
    db: Database,
    order_id: int,
    target: OrderStatus,
    actor: Actor,
    change: Change | None = None,
    *,
    rules: OrdersSettings | None = None,
) -> OrderEvent:
    """Apply one lifecycle transition in its own transaction."""
    rules = rules or OrdersSettings()
    async with db.transaction() as session:
        return await lifecycle.transition(
            session, order_id, target, actor, change, max_attempts=rules.max_attempts
        )


async def change_window(
    db: Database, order_id: int, window: Window, actor: Actor, *, zone: ZoneInfo | None = None
) -> OrderEvent:
    """A new delivery window for an order that waits for a driver (it is placed afresh, on the
    window's day: local in `zone`)."""
    day = window.starts_at.astimezone(zone).date() if zone else None
    async with db.transaction() as session:
        return await lifecycle.change_windows(session, order_id, [window], actor, due_date=day)
