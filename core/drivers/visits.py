"""An order's route stops follow its status, in the same transaction as the status change.

A stop is open until its visit ends; visits that happened stay as history. Arriving stamps the
arrival, picking up closes the pickup, delivering or failing closes the delivery, and an order
that leaves its driver (unassigned, reassigned, cancelled) takes its unvisited stops off her
route. Undoing a tap opens the visit again.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Order, OrderStatus, RouteStop, StopKind, open_stop

S = OrderStatus
VISITING = frozenset({S.ARRIVED, S.PICKED_UP, S.DELIVERED, S.FAILED})
LEAVES_DRIVER = frozenset({S.NEW, S.CANCELLED, S.RESCHEDULED, S.RETURNED})


async def open_rows(
    session: AsyncSession, order_ids: list[int], kind: StopKind | None = None
) -> list[RouteStop]:
    """The open stops of these orders, locked, in id order (so two writers never deadlock)."""
    statement = select(RouteStop).where(col(RouteStop.order_id).in_(order_ids), open_stop())
    if kind is not None:
        statement = statement.where(RouteStop.kind == kind)
    return list(await session.exec(statement.order_by(col(RouteStop.id)).with_for_update()))


async def follow(
    session: AsyncSession, order: Order, source: OrderStatus, target: OrderStatus, now: datetime
) -> None:
    """Bring the order's stops in line with the status change `source` → `target`."""
    assert order.id is not None
    reassigned = source is S.ASSIGNED and target is S.ASSIGNED
    if target not in VISITING and target not in LEAVES_DRIVER and not reassigned:
        return
    for row in await open_rows(session, [order.id]):
        if target is S.ARRIVED:
            if row.kind is not StopKind.DELIVERY:
                continue
            row.actual_arrival = row.actual_arrival or now
        elif target is S.PICKED_UP:
            if row.kind is not StopKind.PICKUP:
                continue
            row.actual_arrival, row.actual_departure = row.actual_arrival or now, now
        elif target in (S.DELIVERED, S.FAILED) or row.actual_arrival is not None:
            row.actual_departure = now  # the visit ended (or was cut short at the door)
        else:
            await session.delete(row)  # she never got there: off her route
            continue
        session.add(row)


async def reopen(session: AsyncSession, order_id: int, undone: OrderStatus) -> None:
    """Undo what `follow` did when the order reached `undone` (a driver's mis-tap)."""
    kind = StopKind.PICKUP if undone is S.PICKED_UP else StopKind.DELIVERY
    if undone is S.ARRIVED:
        for row in await open_rows(session, [order_id], kind):
            row.actual_arrival = None
            session.add(row)
        return
    if undone not in (S.PICKED_UP, S.DELIVERED, S.FAILED) or await open_rows(
        session, [order_id], kind
    ):
        return
    statement = (
        select(RouteStop)
        .where(RouteStop.order_id == order_id, RouteStop.kind == kind)
        .order_by(col(RouteStop.id).desc())
        .limit(1)
    )
    last = (await session.exec(statement)).first()
    if last is not None:
        last.actual_departure = None
        if undone is S.PICKED_UP:
            last.actual_arrival = None
        session.add(last)
