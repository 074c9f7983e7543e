"""Which notifications an order event produces: channel-neutral, written to the outbox.

A notice names a recipient member, a template key and its parameters, and at most three actions
(buttons). Customers hear about their order only once they are linked to a chat; the person who
made a change is not told about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import (
    Customer,
    Driver,
    Member,
    MemberRole,
    Order,
    OrderEvent,
    OrderStatus,
    Role,
)

S = OrderStatus
MAX_ACTIONS = 3
# An event's data flag: a re-plan tells each driver what changed on her route in one message
# ("driver.route_changed"), so the event's own "new stop" / "taken off" notices are not sent.
ROUTE_MESSAGE = "route_message"


@dataclass(frozen=True)
class Notice:
    recipient_member_id: int
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    actions: tuple[dict[str, Any], ...] = ()


def action(name: str, order: Order) -> dict[str, Any]:
    return {"action": name, "order_id": order.id}


CUSTOMER_TEMPLATES: dict[OrderStatus, str] = {
    S.PICKED_UP: "customer.order_picked_up",
    S.OUT_FOR_DELIVERY: "customer.order_out_for_delivery",
    S.ARRIVED: "customer.driver_arrived",
    S.DELIVERED: "customer.order_delivered",
    S.FAILED: "customer.order_failed",
    S.RESCHEDULED: "customer.order_rescheduled",
    S.RETURNED: "customer.order_returned",
    S.CANCELLED: "customer.order_cancelled",
}

CUSTOMER_ACTIONS: dict[OrderStatus, tuple[str, ...]] = {
    S.FAILED: ("customer.pick_new_slot", "customer.leave_instructions"),
    S.DELIVERED: ("customer.rate",),
}

DISPATCHER_ALERTS: dict[OrderStatus, tuple[str, tuple[str, ...]]] = {
    S.FAILED: ("dispatcher.order_failed", ("order.reschedule", "order.return", "order.open")),
    S.RETURNED: ("dispatcher.order_returned", ("order.open",)),
}


async def for_event(
    session: AsyncSession, order: Order, event: OrderEvent, previous_driver_id: int | None
) -> list[Notice]:
    status = event.to_status
    assert status is not None
    if event.kind != "status_changed" and event.kind != "created":
        return await _note_notices(session, order, event)
    params = {
        "order_id": order.id,
        "status": status.value,
        "tracking_token": order.tracking_token,
        "attempt": order.attempts,
    }
    if reason := event.data.get("reason"):
        params["reason"] = reason
    if code := event.data.get("reason_code"):
        params["reason_code"] = code  # worded in the recipient's language when sent
    notices: list[Notice] = []

    customer_member = await _customer_member(session, order)
    if customer_member is not None and event.kind == "created":
        notices.append(Notice(customer_member, "customer.order_confirmed", params))
    elif customer_member is not None and status in CUSTOMER_TEMPLATES:
        actions = tuple(action(name, order) for name in CUSTOMER_ACTIONS.get(status, ()))
        notices.append(Notice(customer_member, CUSTOMER_TEMPLATES[status], params, actions))

    driver_member = await _driver_member(session, order.driver_id)
    previous_member = await _driver_member(session, previous_driver_id)
    told = bool(event.data.get(ROUTE_MESSAGE))  # the drivers hear it in one route message
    if status is S.ASSIGNED and driver_member is not None and not told:
        actions = (action("driver.open_order", order),)
        notices.append(Notice(driver_member, "driver.order_assigned", params, actions))
    if previous_member is not None and previous_member != driver_member:
        if not told:
            notices.append(Notice(previous_member, "driver.order_unassigned", params))
    elif status is S.CANCELLED and driver_member is not None:
        notices.append(Notice(driver_member, "driver.order_cancelled", params))

    if status in DISPATCHER_ALERTS:
        template, names = DISPATCHER_ALERTS[status]
        actions = tuple(action(name, order) for name in names)
        for member_id in await dispatcher_members(session):
            notices.append(Notice(member_id, template, params, actions))

    return [n for n in notices if n.recipient_member_id != event.actor_member_id]


NOTE_ALERTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unassignable": (
        "dispatcher.order_unassignable",
        ("order.assign", "order.change_window", "order.cancel"),
    ),
    "at_risk": ("dispatcher.order_at_risk", ("order.open", "order.assign")),
}


CUSTOMER_NOTES: dict[str, str] = {
    "driver_nearby": "customer.driver_nearby",
    "at_risk": "customer.order_delayed",  # the ETA slipped past the window
}


async def _note_notices(session: AsyncSession, order: Order, event: OrderEvent) -> list[Notice]:
    """Events without a status change: some tell the customer, some alert the dispatchers."""
    notices = []
    params = {
        "order_id": order.id,
        "attempt": order.attempts,
        "reason": event.data.get("reason", ""),
    }
    if event.kind in CUSTOMER_NOTES and (member := await _customer_member(session, order)):
        notices.append(Notice(member, CUSTOMER_NOTES[event.kind], params))
    if event.kind in NOTE_ALERTS:
        template, names = NOTE_ALERTS[event.kind]
        actions = tuple(action(name, order) for name in names)
        notices += [Notice(m, template, params, actions) for m in await dispatcher_members(session)]
    return [n for n in notices if n.recipient_member_id != event.actor_member_id]


async def _customer_member(session: AsyncSession, order: Order) -> int | None:
    customer = await session.get(Customer, order.customer_id)
    return customer.member_id if customer else None


async def _driver_member(session: AsyncSession, driver_id: int | None) -> int | None:
    if driver_id is None:
        return None
    driver = await session.get(Driver, driver_id)
    return driver.member_id if driver else None


async def dispatcher_members(session: AsyncSession) -> list[int]:
    """Active dispatchers; the owners when there is no dispatcher yet."""
    for role in (Role.DISPATCHER, Role.OWNER):
        statement = (
            select(Member.id)
            .join(MemberRole, MemberRole.member_id == Member.id)  # type: ignore[arg-type]
            .where(MemberRole.role == role, Member.active.is_(True))  # type: ignore[attr-defined]
            .order_by(col(Member.id))
        )
        members = [m for m in (await session.exec(statement)).all() if m is not None]
        if members:
            return members
    return []
