"""Customers: one per phone number, found or added as orders arrive; and what a customer can do
in chat: ask where an order is, pick a new slot after a failed attempt, leave instructions for
the driver, rate a delivery. Only for their own orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import OrdersSettings
from core.db import Database
from core.drivers.stops import delivery_eta, driver_names, first_name, ref_of
from core.errors import DomainError
from core.models import Customer, Order, OrderStatus, session_time
from core.orders import lifecycle
from core.orders.lifecycle import FINAL, Actor, Change, Window
from core.texts import words

S = OrderStatus
SLOTS = ((9, 12), (12, 15), (15, 18))  # local hours offered for a new attempt
RECENT = timedelta(days=2)  # final orders still shown when a customer asks


async def find_or_add_customer(
    session: AsyncSession, name: str, phone: str | None, language: str | None = None
) -> Customer:
    """The customer with this phone number, or a new one; a language given is remembered.

    Safe when transactions add the same new phone at once: the insert does nothing when the
    phone exists (on PostgreSQL it waits for a transaction that is adding it), and the customer
    is then read, whoever added it."""
    if not phone:
        customer = Customer(name=name, language=language)
        session.add(customer)
        await session.flush()
        return customer
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.exec(
        insert(Customer)
        .values(name=name, phone=phone, language=language, created_at=session_time(session))
        .on_conflict_do_nothing(index_elements=["phone"])
    )
    found = (await session.exec(select(Customer).where(Customer.phone == phone))).one()
    if language and found.language != language:
        found.language = language
        session.add(found)
    return found


@dataclass(frozen=True)
class OrderStatusView:
    order_id: int
    ref: str
    status: OrderStatus
    eta: datetime | None
    driver: str | None  # first name
    tracking_token: str


def asks_where(text: str) -> bool:
    """Whether a message asks about an order ("where is my order?", „Wo ist meine Bestellung?"),
    in any language we have words for."""
    return words("customer.question_words").search(text) is not None


async def _own(session: AsyncSession, member_id: int, order_id: int) -> Order:
    order = await session.get(Order, order_id)
    customer = await session.get(Customer, order.customer_id) if order else None
    if order is None or customer is None or customer.member_id != member_id:
        raise DomainError("customer.not_yours", order=order_id)
    return order


async def orders_of(db: Database, member_id: int) -> list[OrderStatusView]:
    """The member's open orders, and ones finished in the last two days."""
    since = db.now() - RECENT
    async with db.reads() as session:
        statement = (
            select(Order)
            .join(Customer, col(Customer.id) == Order.customer_id)
            .where(Customer.member_id == member_id)
            .where((col(Order.final_at).is_(None)) | (col(Order.final_at) >= since))
            .order_by(col(Order.id))
        )
        views = []
        for order in await session.exec(statement):
            assert order.id is not None
            stop = await delivery_eta(session, order.id)
            names = await driver_names(session, {order.driver_id} if order.driver_id else set())
            driver_name = first_name(names[order.driver_id]) if order.driver_id in names else None
            views.append(
                OrderStatusView(
                    order.id,
                    ref_of(order),
                    order.status,
                    stop if order.status not in FINAL else None,
                    driver_name,
                    order.tracking_token,
                )
            )
        return views


def new_slots(now: datetime, zone: ZoneInfo, days: int = 2) -> list[Window]:
    """The next three delivery slots starting tomorrow (local time)."""
    today: date = now.astimezone(zone).date()
    slots = []
    for offset in range(1, days + 1):
        day = today + timedelta(days=offset)
        for start, end in SLOTS:
            slots.append(
                Window(
                    datetime.combine(day, time(start), zone), datetime.combine(day, time(end), zone)
                )
            )
    return slots[:3]


async def reschedule(
    db: Database,
    member_id: int,
    order_id: int,
    window: Window,
    actor: Actor,
    rules: OrdersSettings | None = None,
) -> None:
    rules = rules or OrdersSettings()
    async with db.transaction() as session:
        await _own(session, member_id, order_id)
        await lifecycle.transition(
            session,
            order_id,
            S.RESCHEDULED,
            actor,
            Change(windows=[window], note="picked by the customer"),
            max_attempts=rules.max_attempts,
        )


async def leave_instructions(db: Database, member_id: int, order_id: int, text: str) -> None:
    text = " ".join(text.split())
    if not 2 <= len(text) <= 500:
        raise DomainError("customer.instructions_length")
    async with db.transaction() as session:
        order = await _own(session, member_id, order_id)
        if order.status in FINAL:
            raise DomainError("customer.order_final", order=ref_of(order))
        order.notes = f"{order.notes}\n{text}".strip()[:2000]
        session.add(order)
        await lifecycle.note(
            session, order_id, "instructions", Actor.member(member_id), {"text": text}
        )


async def rate(
    db: Database, member_id: int, order_id: int, stars: int, comment: str | None = None
) -> None:
    if not 1 <= stars <= 5:
        raise DomainError("customer.rating_range")
    async with db.transaction() as session:
        order = await _own(session, member_id, order_id)
        if order.status is not S.DELIVERED:
            raise DomainError("customer.rate_after_delivery", order=ref_of(order))
        order.rating = stars
        order.rating_comment = (comment or "").strip()[:1000] or order.rating_comment
        order.rated_at = db.now()
        session.add(order)
