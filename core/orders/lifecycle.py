"""The order state machine: the one place an order's status changes.

    new → assigned → out_for_delivery → arrived → delivered | failed
    assigned → picked_up → out_for_delivery          (pickup-and-delivery orders)
    failed → rescheduled → assigned …   or   failed → returned
    any state that is not final → cancelled
    assigned → assigned (reassign to another driver), assigned → new (unassign)
    out_for_delivery → failed (could not reach the door)

`create()` and `transition()` write the order, one `OrderEvent`, that event's outbox rows, its
merchant webhook deliveries, its route stops' visits (`drivers/visits.py`) and its place in the
queue of orders waiting for a driver (`orders/placements.py`) in the caller's
transaction, and never commit: the caller's `Database.transaction()` does, so all of it lands
together or none of it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.drivers import visits
from core.errors import DomainError, NotFound
from core.merchants import deliveries
from core.models import (
    Driver,
    Member,
    Order,
    OrderEvent,
    OrderKind,
    OrderStatus,
    OrderWindow,
    Proof,
    ProofKind,
    StopKind,
    order_ref,
    session_time,
)
from core.notify import outbox, rules
from core.orders import placements
from core.texts import t

S = OrderStatus

FINAL: frozenset[OrderStatus] = frozenset({S.DELIVERED, S.RETURNED, S.CANCELLED})
WAITING: frozenset[OrderStatus] = frozenset({S.NEW, S.RESCHEDULED})  # for a driver (placements)
ON_ROUTE: frozenset[OrderStatus] = frozenset(
    {S.ASSIGNED, S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED}
)  # a stop on a driver's route

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.ASSIGNED, S.NEW, S.PICKED_UP, S.OUT_FOR_DELIVERY, S.CANCELLED}),
    S.PICKED_UP: frozenset({S.OUT_FOR_DELIVERY, S.CANCELLED}),
    S.OUT_FOR_DELIVERY: frozenset({S.ARRIVED, S.FAILED, S.CANCELLED}),
    S.ARRIVED: frozenset({S.DELIVERED, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.RESCHEDULED, S.RETURNED, S.CANCELLED}),
    S.RESCHEDULED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.RETURNED: frozenset(),
    S.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Actor:
    """Who made a change: a member, or a named system part ("cli", "api:3", "system")."""

    label: str
    member_id: int | None = None

    @classmethod
    def member(cls, member_id: int) -> Actor:
        return cls(label=f"member:{member_id}", member_id=member_id)


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime
    stop: StopKind = StopKind.DELIVERY

    def __post_init__(self) -> None:
        if self.ends_at <= self.starts_at:
            raise DomainError("error.window_order", start=self.starts_at, end=self.ends_at)


@dataclass(frozen=True)
class Change:
    """What a caller asks for besides the target status."""

    driver_id: int | None = None
    reason: str | None = None
    windows: Sequence[Window] | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TransitionRefused(DomainError):
    """A transition the state machine or a business rule does not allow."""

    def __init__(self, key: str, order: Order, target: OrderStatus, **params: object) -> None:
        self.order_id = order.id
        self.status = order.status
        self.target = target
        ref = order_ref(order.external_ref, order.id)
        super().__init__(key, order=ref, status=order.status, verb=target, **params)

    def message(self, lang: str | None = None) -> str:
        params = dict(self.params)
        params["status"] = t(f"status.{self.status}", lang)
        params["verb"] = t(f"verb.{self.target}", lang)
        if "attempts" in params:
            params["attempts"] = t("order.attempts", lang, count=params["attempts"])
        return t(self.key, lang, **params)


def allowed(order: Order, target: OrderStatus) -> bool:
    return target in TRANSITIONS[order.status]


async def create(
    session: AsyncSession,
    order: Order,
    windows: Sequence[Window],
    actor: Actor,
) -> OrderEvent:
    """Save a new order with its windows, a `created` event and its notifications."""
    order.status = S.NEW
    order.created_by = order.created_by or actor.member_id
    session.add(order)
    await session.flush()
    for window in windows:
        session.add(_window_row(order, window))
    assert order.id is not None
    event = OrderEvent(
        order_id=order.id,
        kind="created",
        to_status=S.NEW,
        actor=actor.label,
        actor_member_id=actor.member_id,
        data={"source": order.source},
    )
    await placements.wait(session, order.id)
    return await _record(session, order, event, previous_driver_id=None)


async def transition(
    session: AsyncSession,
    order_id: int,
    target: OrderStatus,
    actor: Actor,
    change: Change | None = None,
    *,
    max_attempts: int = 3,
) -> OrderEvent:
    """Move order `order_id` to `target`, or raise `TransitionRefused` and change nothing."""
    change = change or Change()
    order = await _lock_order(session, order_id)
    await _check(session, order, target, change, max_attempts)

    source = order.status
    previous_driver_id = order.driver_id
    now = session_time(session)
    data: dict[str, Any] = dict(change.extra)
    if change.reason:
        data["reason"] = change.reason
    if change.note:
        data["note"] = change.note

    if target is S.ASSIGNED:
        if change.driver_id != previous_driver_id:
            order.loaded_at = None  # handed over: on board again once the new driver loads it
        order.driver_id = change.driver_id
        data["driver_id"] = change.driver_id
        if previous_driver_id is not None and source is S.ASSIGNED:
            data["previous_driver_id"] = previous_driver_id
    elif target in (S.NEW, S.RESCHEDULED):
        order.driver_id = None
        order.driver_locked = False  # a manual choice ends when the order leaves the driver
        order.loaded_at = None
        if previous_driver_id is not None:
            data["previous_driver_id"] = previous_driver_id
    if target is S.OUT_FOR_DELIVERY:
        order.attempts += 1
        data["attempt"] = order.attempts
    if target is S.RESCHEDULED and change.windows:
        await _replace_windows(session, order, change.windows)
        data["windows"] = _windows_data(change.windows)

    order.status = target
    order.updated_at = now
    if target in FINAL:
        order.final_at = now
    session.add(order)
    if target in WAITING:
        await placements.wait(session, order_id)
    elif source in WAITING:
        await placements.done(session, order_id)
    if target is S.ASSIGNED and order.driver_id is not None:
        placements.assigned(session, order.driver_id)
    if source in ON_ROUTE and target in (*WAITING, S.CANCELLED, S.FAILED):
        placements.replan(session)  # a hole in someone's route: others may fill it better
    await visits.follow(session, order, source, target, now)
    assert order.id is not None
    event = OrderEvent(
        order_id=order.id,
        kind="status_changed",
        from_status=source,
        to_status=target,
        actor=actor.label,
        actor_member_id=actor.member_id,
        data=data,
        created_at=now,
    )
    return await _record(session, order, event, previous_driver_id=previous_driver_id)


async def note(
    session: AsyncSession,
    order_id: int,
    kind: str,
    actor: Actor,
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    """Record something that happened to an order without changing its status (for example
    "no driver can take it"), with its notifications, in the caller's transaction."""
    order = await _lock_order(session, order_id)
    assert order.id is not None
    event = OrderEvent(
        order_id=order.id,
        kind=kind,
        from_status=order.status,
        to_status=order.status,
        actor=actor.label,
        actor_member_id=actor.member_id,
        data=data or {},
    )
    return await _record(session, order, event, previous_driver_id=order.driver_id)


async def change_windows(
    session: AsyncSession,
    order_id: int,
    windows: Sequence[Window],
    actor: Actor,
    *,
    due_date: date | None = None,
) -> OrderEvent:
    """New time windows (and the day they fall on, local) for an order still waiting for a
    driver (a dispatcher's "change window"): a `window_changed` event, and the order is queued
    for placement afresh."""
    order = await _lock_order(session, order_id)
    if order.status not in WAITING:
        raise DomainError("error.window_not_waiting", order=order_ref(order.external_ref, order.id))
    await _replace_windows(session, order, windows)
    if due_date is not None:
        order.due_date = due_date
    order.updated_at = session_time(session)  # plans read before this see it changed
    session.add(order)
    await placements.wait(session, order_id)
    assert order.id is not None
    event = OrderEvent(
        order_id=order.id,
        kind="window_changed",
        from_status=order.status,
        to_status=order.status,
        actor=actor.label,
        actor_member_id=actor.member_id,
        data={"windows": _windows_data(windows)},
    )
    return await _record(session, order, event, previous_driver_id=None)


def _windows_data(windows: Sequence[Window]) -> list[list[str]]:
    """Windows as an order event records them."""
    return [[w.starts_at.isoformat(), w.ends_at.isoformat()] for w in windows]


async def revert(
    session: AsyncSession, order_id: int, undone: OrderEvent, actor: Actor
) -> OrderEvent:
    """Put an order back in the status it had before `undone` (a mis-tap taken back); the
    history keeps both events. Callers decide who may undo what and for how long."""
    order = await _lock_order(session, order_id)
    assert undone.from_status is not None and undone.to_status is order.status
    now = session_time(session)
    assert order.id is not None
    event = OrderEvent(
        order_id=order.id,
        kind="status_undone",
        from_status=order.status,
        to_status=undone.from_status,
        actor=actor.label,
        actor_member_id=actor.member_id,
        data={"undone_event": undone.id},
        created_at=now,
    )
    order.status = undone.from_status
    order.updated_at = now
    order.final_at = None
    session.add(order)
    await visits.reopen(session, order_id, undone.to_status)
    session.add(event)
    await session.flush()
    await deliveries.enqueue(session, order, event)  # the merchant must not keep the undone status
    return event


async def _lock_order(session: AsyncSession, order_id: int) -> Order:
    if not session.in_transaction():
        raise RuntimeError("lifecycle changes must run inside a transaction")
    # populate_existing: the row as it is once locked, not as this session read it before
    # (a double tap racing on PostgreSQL was otherwise delivered twice from a stale status)
    statement = (
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    order = (await session.exec(statement)).one_or_none()
    if order is None:
        raise NotFound("error.order_not_found", order=order_id)
    return order


async def _check(
    session: AsyncSession,
    order: Order,
    target: OrderStatus,
    change: Change,
    max_attempts: int,
) -> None:
    """Raise `TransitionRefused` with the reason a person can act on."""
    if order.status in FINAL:
        raise TransitionRefused("error.final", order, target)
    pickup_delivery = order.kind is OrderKind.PICKUP_DELIVERY
    if order.status is S.ASSIGNED and target is S.OUT_FOR_DELIVERY and pickup_delivery:
        raise TransitionRefused("error.pickup_first", order, target)
    if target is S.PICKED_UP and not pickup_delivery:
        raise TransitionRefused("error.no_pickup", order, target)
    if not allowed(order, target):
        raise TransitionRefused("error.transition", order, target)

    if target is S.ASSIGNED:
        await _check_driver(session, order, target, change.driver_id)
    elif target is S.FAILED and not (change.reason and change.reason.strip()):
        raise TransitionRefused("error.reason_required", order, target)
    elif target is S.RESCHEDULED and order.attempts >= max_attempts:
        raise TransitionRefused("error.too_many_attempts", order, target, attempts=order.attempts)
    elif target is S.DELIVERED and not await _has_proof(session, order):
        proof = t(f"proof.{order.proof_required}")
        raise TransitionRefused("error.proof_missing", order, target, proof=proof)


async def _check_driver(
    session: AsyncSession, order: Order, target: OrderStatus, driver_id: int | None
) -> None:
    if driver_id is None:
        raise TransitionRefused("error.driver_required", order, target)
    driver = await session.get(Driver, driver_id)
    if driver is None:
        raise TransitionRefused("error.driver_not_found", order, target, driver=driver_id)
    member = await session.get(Member, driver.member_id)
    if member is None or not member.active:
        raise TransitionRefused("error.driver_inactive", order, target, driver=driver_id)
    if order.driver_id == driver_id and order.status is S.ASSIGNED:
        raise TransitionRefused("error.same_driver", order, target)


async def _has_proof(session: AsyncSession, order: Order) -> bool:
    if order.proof_required is ProofKind.NONE:
        return True
    if order.proof_required is ProofKind.PHOTO_SIGNATURE:  # a photo and a drawn signature
        photo = select(Proof.id).where(Proof.order_id == order.id, Proof.kind == ProofKind.PHOTO)
        drawn = select(Proof.id).where(
            Proof.order_id == order.id,
            Proof.kind == ProofKind.SIGNATURE,
            col(Proof.signature_sha256).is_not(None),
        )
        found = [(await session.exec(q.limit(1))).first() for q in (photo, drawn)]
        return None not in found
    statement = select(Proof.id).where(
        Proof.order_id == order.id, Proof.kind == order.proof_required
    )
    if order.proof_required is ProofKind.PIN:
        statement = statement.where(Proof.pin_checked.is_(True))  # type: ignore[attr-defined]
    return (await session.exec(statement.limit(1))).first() is not None


def _window_row(order: Order, window: Window) -> OrderWindow:
    assert order.id is not None
    return OrderWindow(
        order_id=order.id, stop=window.stop, starts_at=window.starts_at, ends_at=window.ends_at
    )


async def _replace_windows(session: AsyncSession, order: Order, windows: Sequence[Window]) -> None:
    stops = {window.stop for window in windows}
    old = await session.exec(
        select(OrderWindow).where(OrderWindow.order_id == order.id, OrderWindow.stop.in_(stops))  # type: ignore[attr-defined]
    )
    for row in old:
        await session.delete(row)
    for window in windows:
        session.add(_window_row(order, window))


async def _record(
    session: AsyncSession, order: Order, event: OrderEvent, *, previous_driver_id: int | None
) -> OrderEvent:
    session.add(event)
    await session.flush()
    notices = await rules.for_event(session, order, event, previous_driver_id)
    await outbox.enqueue(session, event, notices)
    await deliveries.enqueue(session, order, event)
    return event
