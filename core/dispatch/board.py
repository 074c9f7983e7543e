"""What dispatchers look at: orders, one order's card and drivers (reports: `reports`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, func, select

from core.db import Database
from core.drivers.proofs import latest_drawn, latest_photo
from core.drivers.stops import (
    OPEN,
    delivery_eta,
    delivery_window,
    driver_names,
    first_name,
    ref_of,
    route_of,
)
from core.errors import DomainError
from core.models import (
    Customer,
    Driver,
    Member,
    Order,
    OrderStatus,
    ShiftState,
    order_ref,
)
from core.validation import MAX_ID

S = OrderStatus
LIST_LIMIT = 30
MAX_REF = 100  # the longest reference an order can have


@dataclass(frozen=True)
class OrderLine:
    order_id: int
    ref: str
    status: OrderStatus
    address: str
    driver: str | None


@dataclass(frozen=True)
class OrderCard:
    order_id: int
    ref: str
    status: OrderStatus
    customer: str
    phone: str | None
    address: str
    located: bool
    window: tuple[datetime, datetime] | None
    driver: str | None
    eta: datetime | None
    attempts: int
    notes: str
    tracking_token: str
    locked: bool
    photo_proof_id: int | None = None  # the latest stored proof photo
    signature_proof_id: int | None = None  # the latest signature drawn on the pad
    signed_by: str | None = None  # the name typed under it


@dataclass(frozen=True)
class DriverLine:
    driver_id: int
    name: str
    on_shift: bool
    last_seen: datetime | None
    live_until: datetime | None
    load: int
    next_stop: str | None


async def list_orders(
    db: Database, status: OrderStatus | None = None, limit: int = LIST_LIMIT
) -> tuple[list[OrderLine], int]:
    """Orders (open ones when no status is given), oldest first; and how many match in all."""
    where = (
        [Order.status == status]
        if status
        else [col(Order.status).in_([S.NEW, S.RESCHEDULED, *OPEN, S.FAILED])]
    )
    async with db.reads() as session:
        total = (await session.exec(select(func.count()).select_from(Order).where(*where))).one()
        orders = list(
            await session.exec(select(Order).where(*where).order_by(col(Order.id)).limit(limit))
        )
        names = await driver_names(session, {o.driver_id for o in orders if o.driver_id})
    lines = [
        OrderLine(
            o.id or 0,
            ref_of(o),
            o.status,
            o.address,
            first_name(names[o.driver_id]) if o.driver_id in names else None,
        )
        for o in orders
    ]
    return lines, total


async def find_order(db: Database, text: str) -> int:
    """The order someone means by `text`: its reference (what /orders shows; any case), or
    "#12" (or a bare 12 no reference claims) for its number. A DomainError when none."""
    text = " ".join(text.split())
    number = text.removeprefix("#")
    async with db.reads() as session:
        if not text.startswith("#") and 0 < len(text) <= MAX_REF:
            refs = col(Order.external_ref)
            for match in (refs == text, sa.func.lower(refs) == text.lower()):
                found = list(await session.exec(select(Order.id).where(match).limit(2)))
                if len(found) == 1 and found[0] is not None:
                    return found[0]
        if number.isdigit() and len(number) <= 10 and 0 < int(number) <= MAX_ID:
            order = await session.get(Order, int(number))
            if order is not None and order.id is not None:
                return order.id
    shown = text if len(text) <= MAX_REF else f"{text[:MAX_REF]}…"
    raise DomainError("error.order_not_found", order=shown)


async def refs(db: Database, order_ids: set[int]) -> dict[int, str]:
    """order id -> the reference people know it by."""
    if not order_ids:
        return {}
    async with db.reads() as session:
        rows = await session.exec(
            select(Order.id, Order.external_ref).where(col(Order.id).in_(order_ids))
        )
        return {order_id: order_ref(ref, order_id) for order_id, ref in rows if order_id}


async def order_card(db: Database, order_id: int) -> OrderCard:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        if order is None:
            raise DomainError("error.order_not_found", order=order_id)
        customer = await session.get(Customer, order.customer_id)
        window = await delivery_window(session, order_id)
        eta = await delivery_eta(session, order_id)
        names = await driver_names(session, {order.driver_id} if order.driver_id else set())
        photo = await latest_photo(session, order_id)
        drawn = await latest_drawn(session, order_id)
    return OrderCard(
        order_id=order_id,
        ref=ref_of(order),
        status=order.status,
        customer=customer.name if customer else "?",
        phone=customer.phone if customer else None,
        address=order.address,
        located=order.lat is not None,
        window=(window.starts_at, window.ends_at) if window else None,
        driver=names.get(order.driver_id) if order.driver_id else None,
        eta=eta if order.status in OPEN else None,
        attempts=order.attempts,
        notes=order.notes,
        tracking_token=order.tracking_token,
        locked=order.driver_locked,
        photo_proof_id=photo.id if photo and photo.stored_path else None,
        signature_proof_id=drawn.id if drawn else None,
        signed_by=drawn.recipient_name if drawn else None,
    )


async def drivers(db: Database) -> list[DriverLine]:
    """Every active driver: on shift first, then by name."""
    async with db.reads() as session:
        rows = list(
            await session.exec(
                select(Driver, Member.name)
                .join(Member, col(Member.id) == Driver.member_id)
                .where(Member.active.is_(True))  # type: ignore[attr-defined]
            )
        )
        loads = dict(
            (
                await session.exec(
                    select(Order.driver_id, func.count())
                    .where(col(Order.status).in_(OPEN))
                    .group_by(col(Order.driver_id))
                )
            ).all()
        )
    lines = []
    for driver, name in rows:
        assert driver.id is not None
        route = await route_of(db, driver.id) if loads.get(driver.id) else []
        lines.append(
            DriverLine(
                driver.id,
                name,
                driver.shift_state is ShiftState.ON,
                driver.last_seen_at,
                driver.live_until,
                loads.get(driver.id, 0),
                f"{route[0].ref} {route[0].address}" if route else None,
            )
        )
    return sorted(lines, key=lambda d: (not d.on_shift, d.name.lower()))


async def find_driver(db: Database, text: str) -> int:
    """A driver by number or (start of a) name; a DomainError when none or several match."""
    text = text.strip().lstrip("@")
    async with db.reads() as session:
        found = await session.exec(
            select(Driver.id, Member.name)
            .join(Member, col(Member.id) == Driver.member_id)
            .where(col(Member.active).is_(True))
        )
        rows = [(driver_id, name) for driver_id, name in found if driver_id is not None]
    if text.isdigit() and any(driver_id == int(text) for driver_id, _ in rows):
        return int(text)
    wanted = text.casefold()
    exact = [i for i, name in rows if name.casefold() == wanted]
    matches = exact or [i for i, name in rows if name.casefold().startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DomainError("board.no_such_driver", driver=text)
    names = ", ".join(sorted(name for i, name in rows if i in matches))
    raise DomainError("board.which_driver", driver=text, names=names)
