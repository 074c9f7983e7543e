"""Reads what the metrics of a stretch of time need, in one place (`metrics` computes)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.drivers.stops import first_name
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
from core.models.types import JSON
from core.reports.metrics import (
    OUTCOMES,
    EventRow,
    OrderRow,
    PingRow,
    Rows,
    ShiftRow,
    Tally,
    figures,
    shifts_in,
)

S = OrderStatus
CHANGES = (S.OUT_FOR_DELIVERY, *OUTCOMES)  # the status changes the metrics look at
ENDS = (S.DELIVERED, S.FAILED, S.RETURNED)  # what the days compared with count


async def core(session: AsyncSession, statement: sa.Select) -> sa.CursorResult:
    """Plain rows, without the ORM's handling (many rows read faster)."""
    connection = await session.connection()
    return await connection.execute(statement)


def period_ids(start: datetime, end: datetime) -> sa.CompoundSelect:
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
    return sa.union(made, windows, outcomes)


async def load(db: Database, start: datetime, end: datetime, now: datetime) -> Rows:
    """Everything the metrics of [start, end) need."""
    rows = Rows(now=now)
    ids = select(period_ids(start, end).subquery().c[0])
    async with db.reads() as session:
        rows.orders = await _orders(session, ids, names=True)
        rows.events = await _events(session, ids, CHANGES)
        await _shifts_and_drivers(session, rows, start, end)
        await _driving(session, rows, start, end)
    return rows


async def compared(
    db: Database, periods: list[tuple[datetime, datetime]], now: datetime
) -> list[dict[str, float | None]]:
    """The compared figures (`metrics.figures`) of each of `periods`, counted by the database."""
    first, last = periods[0][0], periods[-1][1]
    async with db.reads() as session:
        undos = await session.exec(
            select(OrderEvent.data).where(
                OrderEvent.kind == "status_undone", OrderEvent.created_at >= first
            )
        )
        undone = [int(i) for data in undos if (i := data.get("undone_event")) is not None]
        tallies = [await tally(session, start, end, undone) for start, end in periods]
        rows = Rows(now=now)
        await _shifts_and_drivers(session, rows, first, last)
    return [
        figures(t, shifts_in(rows, start, end))
        for t, (start, end) in zip(tallies, periods, strict=True)
    ]


async def tally(session: AsyncSession, start: datetime, end: datetime, undone: list[int]) -> Tally:
    """The outcomes of [start, end) counted in SQL, as `metrics.compute` defines them."""
    e, o, w = OrderEvent, Order, OrderWindow
    delivered = col(e.to_status) == S.DELIVERED
    windows = select(w.id).where(col(w.order_id) == e.order_id, col(w.stop) == StopKind.DELIVERY)
    timely = sa.or_(
        windows.where(col(w.starts_at) <= e.created_at, col(w.ends_at) >= e.created_at).exists(),
        ~windows.exists(),
    )

    def count(*cases: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((sa.and_(*cases), 1), else_=0)), 0)

    statement = (
        sa.select(
            count(delivered),
            count(col(e.to_status) == S.FAILED),
            count(col(e.to_status) == S.RETURNED),
            count(delivered, timely),
            count(delivered, col(o.attempts) <= 1),
            count(delivered, col(o.driver_id).is_not(None)),
            count(delivered, col(o.rating).is_not(None)),
            sa.func.coalesce(sa.func.sum(sa.case((delivered, col(o.rating)), else_=None)), 0),
        )
        .select_from(e)
        .join(o, col(o.id) == e.order_id)
        .where(
            col(e.kind) == "status_changed",
            col(e.to_status).in_(ENDS),
            col(e.created_at) >= start,
            col(e.created_at) < end,
            col(e.id).not_in(undone),
        )
    )
    return Tally(*(int(v) for v in (await core(session, statement)).one()))


async def _orders(session: AsyncSession, ids: sa.Select, *, names: bool) -> dict[int, OrderRow]:
    columns = (
        col(Order.id),
        col(Order.external_ref),
        col(Order.status),
        col(Order.created_at),
        col(Order.attempts),
        col(Order.driver_id),
        col(Order.rating),
    )
    statement = sa.select(*columns, col(Customer.name) if names else sa.literal(""))
    if names:
        statement = statement.join(Customer, col(Customer.id) == Order.customer_id)
    found = await core(session, statement.where(col(Order.id).in_(ids)))
    windows: dict[int, list[tuple[datetime, datetime]]] = {}
    spans = await core(
        session,
        select(OrderWindow.order_id, OrderWindow.starts_at, OrderWindow.ends_at)
        .where(col(OrderWindow.order_id).in_(ids), OrderWindow.stop == StopKind.DELIVERY)
        .order_by(col(OrderWindow.starts_at)),
    )
    for order_id, a, b in spans:
        windows.setdefault(order_id, []).append((a, b))
    return {
        i: OrderRow(
            id=i,
            ref=order_ref(ref, i),
            customer=first_name(customer) if names else "",
            status=status,
            created_at=created,
            windows=tuple(windows.get(i, ())),
            attempts=attempts,
            driver_id=driver_id,
            rating=rating,
        )
        for i, ref, status, created, attempts, driver_id, rating, customer in found
    }


async def _events(
    session: AsyncSession,
    ids: sa.Select,
    statuses: tuple[OrderStatus, ...],
    *where: sa.ColumnElement[bool],
) -> list[EventRow]:
    """The orders' changes to `statuses`, in time order, without those taken back (undone);
    a failure with its reason."""
    failure = sa.case((col(OrderEvent.to_status) == S.FAILED, col(OrderEvent.data)), else_=None)
    changes = await core(
        session,
        sa.select(
            col(OrderEvent.id),
            col(OrderEvent.order_id),
            col(OrderEvent.to_status),
            col(OrderEvent.created_at),
            sa.type_coerce(failure, JSON),
        )
        .where(
            col(OrderEvent.order_id).in_(ids),
            *where,
            col(OrderEvent.kind) == "status_changed",
            col(OrderEvent.to_status).in_(statuses),
        )
        .order_by(col(OrderEvent.created_at), col(OrderEvent.id)),
    )
    found = list(changes)
    undos = await session.exec(
        select(OrderEvent.data).where(
            col(OrderEvent.order_id).in_(ids), OrderEvent.kind == "status_undone"
        )
    )
    undone = {data.get("undone_event") for data in undos}
    return [
        EventRow(order_id, status, at, _reason(data) if data is not None else None)
        for i, order_id, status, at, data in found
        if i not in undone
    ]


def _reason(data: dict) -> str:
    """A failure's listed reason code, else the driver's own words (else "other")."""
    code = data.get("reason_code")
    if code and code != "other":
        return str(code)
    return str(data.get("reason") or "other")


async def _shifts_and_drivers(
    session: AsyncSession, rows: Rows, start: datetime, end: datetime
) -> None:
    names = await session.exec(
        select(Driver.id, Member.name).join(Member, col(Member.id) == Driver.member_id)
    )
    rows.drivers = {i: first_name(name) for i, name in names if i is not None}
    shifts = await session.exec(
        select(Shift.driver_id, Shift.started_at, Shift.ended_at).where(
            Shift.started_at < end,
            sa.or_(col(Shift.ended_at).is_(None), col(Shift.ended_at) > start),
        )
    )
    rows.shifts = [ShiftRow._make(shift) for shift in shifts]


async def _driving(session: AsyncSession, rows: Rows, start: datetime, end: datetime) -> None:
    pings = await core(
        session,
        select(LocationPing.driver_id, LocationPing.recorded_at, LocationPing.lat, LocationPing.lon)
        .where(LocationPing.recorded_at >= start, LocationPing.recorded_at < end)
        .order_by(col(LocationPing.driver_id), col(LocationPing.recorded_at)),
    )
    rows.pings = [PingRow._make(p) for p in pings]
    planned = await session.exec(
        select(
            sa.func.coalesce(sa.func.sum(Route.planned_distance_m), 0),
            sa.func.coalesce(sa.func.sum(Route.planned_drive_s), 0),
        ).where(col(Route.service_date).in_(local_dates(start, end)))
    )
    rows.planned_m, rows.planned_drive_s = (int(v or 0) for v in planned.one())
    lost = await session.exec(
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
