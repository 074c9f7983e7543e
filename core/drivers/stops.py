"""A driver's day: her stops in order, and what she does at each (arrive, deliver, fail, undo).

A driver acts only on her own stops. When she finishes a stop, her next one is started (out for
delivery), which tells that customer she is on the way; a mis-tap can be undone for a few minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import OrdersSettings
from core.db import Database
from core.errors import DomainError
from core.models import (
    Customer,
    Driver,
    Member,
    Order,
    OrderEvent,
    OrderKind,
    OrderStatus,
    OrderWindow,
    OutboxMessage,
    OutboxStatus,
    ProofKind,
    RouteStop,
    StopKind,
    open_stop,
    order_ref,
)
from core.orders import lifecycle
from core.orders.lifecycle import Actor, Change
from core.texts import t

S = OrderStatus
OPEN = (S.ASSIGNED, S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED)
MOVING = (S.OUT_FOR_DELIVERY, S.ARRIVED)
FAIL_REASONS = ("not_home", "wrong_address", "refused", "no_access", "damaged", "other")


@dataclass(frozen=True)
class StopView:
    position: int
    order_id: int
    ref: str
    kind: StopKind
    status: OrderStatus
    address: str
    lat: float | None
    lon: float | None
    eta: datetime | None
    window: tuple[datetime, datetime] | None
    customer: str  # first name only
    notes: str
    proof: ProofKind


def ref_of(order: Order) -> str:
    return order_ref(order.external_ref, order.id)


def first_name(name: str) -> str:
    return (name.split() or ["?"])[0]


async def delivery_window(session: AsyncSession, order_id: int) -> OrderWindow | None:
    """The order's first delivery window."""
    statement = (
        select(OrderWindow)
        .where(OrderWindow.order_id == order_id, OrderWindow.stop == StopKind.DELIVERY)
        .order_by(col(OrderWindow.starts_at))
    )
    return (await session.exec(statement)).first()


async def delivery_eta(session: AsyncSession, order_id: int) -> datetime | None:
    """When the order's driver is expected at its door (None when it is on no route): the
    ETA of its open delivery stop, of which there is at most one."""
    statement = select(RouteStop.eta).where(
        RouteStop.order_id == order_id, RouteStop.kind == StopKind.DELIVERY, open_stop()
    )
    return (await session.exec(statement)).one_or_none()


async def driver_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    """driver id -> the driver's full name."""
    if not ids:
        return {}
    rows = await session.exec(
        select(Driver.id, Member.name)
        .join(Member, col(Member.id) == Driver.member_id)
        .where(col(Driver.id).in_(ids))
    )
    return {driver_id: name for driver_id, name in rows if driver_id is not None}


async def route_of(db: Database, driver_id: int) -> list[StopView]:
    """Her open stops: the one she is on first, then the planned order."""
    async with db.reads() as session:
        orders = {
            o.id: o
            for o in await session.exec(
                select(Order).where(Order.driver_id == driver_id, col(Order.status).in_(OPEN))
            )
        }
        if not orders:
            return []
        ids = list(orders)
        planned = {
            (r.order_id, r.kind): r
            for r in await session.exec(
                select(RouteStop).where(col(RouteStop.order_id).in_(ids), open_stop())
            )
        }
        windows: dict[tuple[int, StopKind], tuple[datetime, datetime]] = {}
        for w in await session.exec(
            select(OrderWindow)
            .where(col(OrderWindow.order_id).in_(ids))
            .order_by(col(OrderWindow.starts_at))
        ):
            windows.setdefault((w.order_id, w.stop), (w.starts_at, w.ends_at))
        names = {
            c.id: first_name(c.name)
            for c in await session.exec(
                select(Customer).where(
                    col(Customer.id).in_({o.customer_id for o in orders.values()})
                )
            )
        }
    stops = []
    for order in orders.values():
        assert order.id is not None
        kinds = [StopKind.DELIVERY]
        if order.kind is OrderKind.PICKUP_DELIVERY and order.status is S.ASSIGNED:
            kinds.insert(0, StopKind.PICKUP)
        for kind in kinds:
            stops.append((order, kind, planned.get((order.id, kind))))

    def rank(item: tuple[Order, StopKind, RouteStop | None]) -> tuple[int, int, int, int]:
        order, kind, row = item
        return (
            0 if order.status in MOVING else 1,
            row.sequence if row else 1_000_000,
            order.id or 0,
            0 if kind is StopKind.PICKUP else 1,
        )

    views = []
    for position, (order, kind, row) in enumerate(sorted(stops, key=rank), start=1):
        pickup = kind is StopKind.PICKUP
        views.append(
            StopView(
                position=position,
                order_id=order.id or 0,
                ref=ref_of(order),
                kind=kind,
                status=order.status,
                address=(order.pickup_address or "") if pickup else order.address,
                lat=order.pickup_lat if pickup else order.lat,
                lon=order.pickup_lon if pickup else order.lon,
                eta=row.eta if row else None,
                window=windows.get((order.id or 0, kind)),
                customer=names.get(order.customer_id, "?"),
                notes=order.notes,
                proof=order.proof_required,
            )
        )
    return views


async def stop_of(db: Database, driver_id: int, order_id: int) -> StopView:
    """The next stop of this order on her route (its pickup first, while it waits for one)."""
    for stop in await route_of(db, driver_id):
        if stop.order_id == order_id:
            return stop
    async with db.reads() as session:
        raise not_yours(await session.get(Order, order_id), order_id)


def not_yours(order: Order | None, order_id: int) -> DomainError:
    """The refusal for someone else's stop, naming the order as the driver knows it."""
    return DomainError("driver.not_yours", order=ref_of(order) if order else f"#{order_id}")


async def own_order(session: AsyncSession, driver_id: int, order_id: int) -> Order:
    """The order, if it is on this driver's route."""
    order = await session.get(Order, order_id)
    if order is None or order.driver_id != driver_id:
        raise not_yours(order, order_id)
    return order


async def own_ref(db: Database, driver_id: int, order_id: int) -> str:
    """The order's reference, if it is on this driver's route."""
    async with db.reads() as session:
        return ref_of(await own_order(session, driver_id, order_id))


async def _step(
    session: AsyncSession, order: Order, target: OrderStatus, actor: Actor, rules: OrdersSettings,
    change: Change | None = None,
) -> None:  # fmt: skip
    assert order.id is not None
    await lifecycle.transition(
        session, order.id, target, actor, change, max_attempts=rules.max_attempts
    )


class Stops:
    """What a driver does at her stops."""

    def __init__(self, db: Database, rules: OrdersSettings | None = None) -> None:
        self.db = db
        self.rules = rules or OrdersSettings()

    async def picked_up(self, driver_id: int, order_id: int, actor: Actor) -> None:
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, order_id)
            await _step(session, order, S.PICKED_UP, actor, self.rules)

    async def arrive(self, driver_id: int, order_id: int, actor: Actor) -> None:
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, order_id)
            if order.status in (S.ASSIGNED, S.PICKED_UP):  # she skipped ahead to this stop
                await _step(session, order, S.OUT_FOR_DELIVERY, actor, self.rules)
            await _step(session, order, S.ARRIVED, actor, self.rules)

    async def needs(self, driver_id: int, order_id: int) -> ProofKind:
        """The proof this order still needs before it can be marked delivered."""
        async with self.db.reads() as session:
            order = await own_order(session, driver_id, order_id)
            return order.proof_required

    async def deliver(self, driver_id: int, order_id: int, actor: Actor) -> int | None:
        """Mark delivered (the proof must be saved first); start her next stop. Returns it."""
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, order_id)
            if order.status in (S.ASSIGNED, S.PICKED_UP):
                await _step(session, order, S.OUT_FOR_DELIVERY, actor, self.rules)
            if order.status is S.OUT_FOR_DELIVERY:
                await _step(session, order, S.ARRIVED, actor, self.rules)
            await _step(session, order, S.DELIVERED, actor, self.rules)
        return await self.start_next(driver_id, actor)

    async def fail(self, driver_id: int, order_id: int, reason: str, actor: Actor) -> int | None:
        """Mark failed with a reason code (or free text); start her next stop."""
        code = reason if reason in FAIL_REASONS[:-1] else "other"  # "other": her own words
        text = t(f"reason.{code}") if code != "other" else reason.strip()
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, order_id)
            if order.status in (S.ASSIGNED, S.PICKED_UP):
                await _step(session, order, S.OUT_FOR_DELIVERY, actor, self.rules)
            change = Change(reason=text, extra={"reason_code": code})
            await _step(session, order, S.FAILED, actor, self.rules, change)
        return await self.start_next(driver_id, actor)

    async def start_next(self, driver_id: int, actor: Actor) -> int | None:
        """Send her next waiting stop out for delivery, unless she is on one already."""
        route = await route_of(self.db, driver_id)
        if not route or any(stop.status in MOVING for stop in route):
            return None
        first = route[0]
        if first.kind is StopKind.PICKUP:
            return None  # she has to pick it up first
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, first.order_id)
            if order.status not in (S.ASSIGNED, S.PICKED_UP):
                return None
            if order.kind is OrderKind.PICKUP_DELIVERY and order.status is S.ASSIGNED:
                return None
            await _step(session, order, S.OUT_FOR_DELIVERY, actor, self.rules)
            return order.id

    async def undo(
        self, driver_id: int, order_id: int, actor: Actor, *, within: timedelta
    ) -> OrderStatus:
        """Take back her last status change of this order if it is recent; return the status
        it is back in. Messages about it that have not gone out yet are held back."""
        async with self.db.transaction() as session:
            order = await own_order(session, driver_id, order_id)
            statement = (
                select(OrderEvent)
                .where(OrderEvent.order_id == order_id, OrderEvent.kind == "status_changed")
                .order_by(col(OrderEvent.id).desc())
                .limit(1)
            )
            last = (await session.exec(statement)).first()
            if (
                last is None
                or last.actor_member_id != actor.member_id
                or last.to_status is not order.status
                or last.from_status is None
                or self.db.now() - last.created_at > within
                or order.status not in (S.ARRIVED, S.DELIVERED, S.FAILED, S.PICKED_UP)
            ):
                raise DomainError("driver.cannot_undo", order=ref_of(order))
            await lifecycle.revert(session, order_id, last, actor)
            pending = await session.exec(
                select(OutboxMessage).where(
                    col(OutboxMessage.idempotency_key).startswith(f"order-event:{last.id}:"),
                    OutboxMessage.status == OutboxStatus.PENDING,
                )
            )
            for message in pending:
                message.status = OutboxStatus.SKIPPED
                message.last_error = "undone by the driver"
                session.add(message)
            return last.from_status
