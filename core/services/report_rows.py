"""Reads what the metrics of a stretch of time need, in one place (`metrics` computes)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from core.db import Database
from core.models import (
    Customer,
    Driver,
    LocationPing,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    OutboxMessage,
    OutboxStatus,
    Route,
    Shift,
    StopKind,
    order_ref,
)
from core.services.metrics import OUTCOMES, EventRow, OrderRow, PingRow, Rows, ShiftRow
from core.services.stops import first_name

S = OrderStatus
CHANGES = (S.OUT_FOR_DELIVERY, *OUTCOMES)  # the status changes the metrics look at


def period_ids(start: datetime, end: datetime) -> sa.Select:
    """The orders that may belong to [start, end): made in it, a window starting in it, or an
    outcome in it (`metrics.belongs` decides exactly)."""
    made = select(Order.id).where(Order.created_at >= start, Order.created_at < end)
    windows = select(OrderWindow.order_id).where(
        OrderWindow.stop == StopKind.DELIVERY,
        OrderWindow.starts_at >= start,
        OrderWindow.starts_at < end,
    )
    outcomes = select(OrderEvent.order_id).where(
        OrderEvent.kind == "status_changed",
        col(OrderEvent.to_status).in_(OUTCOMES),
        OrderEvent.created_at >= start,
        OrderEvent.created_at < end,
    )
    return sa.union(made, windows, outcomes)  # type: ignore[arg-type]


async def load(
    db: Database, start: datetime, end: datetime, now: datetime, *, driving: bool = True
) -> Rows:
    """Rows for [start, end); with `driving`, also pings, planned routes and lost
    notifications (the days a report is compared with leave them out)."""
    rows = Rows(now=now)
    ids = period_ids(start, end).subquery()
    async with db.reads() as session:
        found = await session.exec(
            select(Order, Customer.name)
            .join(Customer, col(Customer.id) == Order.customer_id)
            .where(col(Order.id).in_(select(ids.c[0])))
        )
        orders = {o.id: (o, name) for o, name in found}
        windows: dict[int, list[tuple[datetime, datetime]]] = {}
        spans = await session.exec(
            select(OrderWindow.order_id, OrderWindow.starts_at, OrderWindow.ends_at)
            .where(
                col(OrderWindow.order_id).in_(select(ids.c[0])),
                OrderWindow.stop == StopKind.DELIVERY,
            )
            .order_by(col(OrderWindow.starts_at))
        )
        for order_id, a, b in spans:
            windows.setdefault(order_id, []).append((a, b))
        changes = list(
            await session.exec(
                select(OrderEvent)
                .where(
                    col(OrderEvent.order_id).in_(select(ids.c[0])),
                    col(OrderEvent.kind).in_(["status_changed", "status_undone"]),
                )
                .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
            )
        )
        names = await session.exec(
            select(Driver.id, Member.name).join(Member, col(Member.id) == Driver.member_id)
        )
        rows.drivers = {i: first_name(name) for i, name in names if i is not None}
        shifts = await session.exec(
            select(Shift).where(
                Shift.started_at < end,
                sa.or_(col(Shift.ended_at).is_(None), col(Shift.ended_at) > start),
            )
        )
        rows.shifts = [ShiftRow(s.driver_id, s.started_at, s.ended_at) for s in shifts]
        if driving:
            await _driving(session, rows, start, end)
    for order_id, (order, customer) in orders.items():
        assert order_id is not None
        rows.orders[order_id] = OrderRow(
            id=order_id,
            ref=order_ref(order.external_ref, order_id),
            customer=first_name(customer),
            status=order.status,
            created_at=order.created_at,
            windows=tuple(windows.get(order_id, [])),
            attempts=order.attempts,
            driver_id=order.driver_id,
            rating=order.rating,
        )
    undone = {e.data.get("undone_event") for e in changes if e.kind == "status_undone"}
    rows.events = [
        EventRow(e.order_id, e.to_status, e.created_at, _reason(e))
        for e in changes
        if e.kind == "status_changed"
        and e.to_status in CHANGES
        and e.id not in undone
        and e.order_id in rows.orders
    ]
    return rows


def _reason(event: OrderEvent) -> str | None:
    """A failure's listed reason code, else the driver's own words (else "other")."""
    if event.to_status is not S.FAILED:
        return None
    code = event.data.get("reason_code")
    if code and code != "other":
        return str(code)
    return str(event.data.get("reason") or "other")


async def _driving(session: object, rows: Rows, start: datetime, end: datetime) -> None:
    pings = await session.exec(  # type: ignore[attr-defined]
        select(LocationPing.driver_id, LocationPing.recorded_at, LocationPing.lat, LocationPing.lon)
        .where(LocationPing.recorded_at >= start, LocationPing.recorded_at < end)
        .order_by(col(LocationPing.driver_id), col(LocationPing.recorded_at))
    )
    rows.pings = [PingRow(*p) for p in pings]
    planned = await session.exec(  # type: ignore[attr-defined]
        select(
            sa.func.coalesce(sa.func.sum(Route.planned_distance_m), 0),
            sa.func.coalesce(sa.func.sum(Route.planned_drive_s), 0),
        ).where(col(Route.service_date).in_(local_dates(start, end)))
    )
    rows.planned_m, rows.planned_drive_s = (int(v) for v in planned.one())
    lost = await session.exec(  # type: ignore[attr-defined]
        select(sa.func.count())
        .select_from(OutboxMessage)
        .where(
            col(OutboxMessage.status).in_([OutboxStatus.DEAD, OutboxStatus.SKIPPED]),
            OutboxMessage.created_at >= start,
            OutboxMessage.created_at < end,
        )
    )
    rows.notifications_lost = int(lost.one())


def local_dates(start: datetime, end: datetime) -> list[date]:
    """The calendar days of [start, end) as its own zone names them."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
