"""The order state machine: every allowed transition succeeds, every other one is refused with a
message a person can read and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.config import OrdersSettings
from core.db import Database
from core.errors import NotFound
from core.models import (
    AppendOnlyError,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    Proof,
    ProofKind,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Actor, Change, TransitionRefused, Window
from tests.factories import DAY, S, add_driver, change_for, move, new_order, snapshot

ALL = list(OrderStatus)

# Written out from the issue, independently of core.orders.lifecycle.TRANSITIONS.
EXPECTED_DELIVERY = {
    S.NEW: {S.ASSIGNED, S.CANCELLED},
    S.ASSIGNED: {S.ASSIGNED, S.NEW, S.OUT_FOR_DELIVERY, S.CANCELLED},
    S.OUT_FOR_DELIVERY: {S.ARRIVED, S.FAILED, S.CANCELLED},
    S.ARRIVED: {S.DELIVERED, S.FAILED, S.CANCELLED},
    S.FAILED: {S.RESCHEDULED, S.RETURNED, S.CANCELLED},
    S.RESCHEDULED: {S.ASSIGNED, S.CANCELLED},
    S.DELIVERED: set(),
    S.RETURNED: set(),
    S.CANCELLED: set(),
}
EXPECTED_PICKUP_DELIVERY = {
    **EXPECTED_DELIVERY,
    S.ASSIGNED: {S.ASSIGNED, S.NEW, S.PICKED_UP, S.CANCELLED},
    S.PICKED_UP: {S.OUT_FOR_DELIVERY, S.CANCELLED},
}

PATH_DELIVERY = {
    S.NEW: [],
    S.ASSIGNED: [S.ASSIGNED],
    S.OUT_FOR_DELIVERY: [S.ASSIGNED, S.OUT_FOR_DELIVERY],
    S.ARRIVED: [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED],
    S.DELIVERED: [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED],
    S.FAILED: [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.FAILED],
    S.RESCHEDULED: [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED, S.RESCHEDULED],
    S.RETURNED: [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED, S.RETURNED],
    S.CANCELLED: [S.CANCELLED],
}


def path_to(state: OrderStatus, pickup: bool) -> list[OrderStatus]:
    if not pickup:
        return PATH_DELIVERY[state]
    if state is S.PICKED_UP:
        return [S.ASSIGNED, S.PICKED_UP]
    steps = PATH_DELIVERY[state]
    return [step for s in steps for step in ([S.PICKED_UP, s] if s is S.OUT_FOR_DELIVERY else [s])]


CASES = [(False, state) for state in EXPECTED_DELIVERY] + [
    (True, state) for state in EXPECTED_PICKUP_DELIVERY
]


@pytest.mark.parametrize(("pickup", "start"), CASES, ids=lambda v: str(v))
async def test_every_transition_from_a_state(db: Database, pickup: bool, start: OrderStatus):
    expected = (EXPECTED_PICKUP_DELIVERY if pickup else EXPECTED_DELIVERY)[start]
    first = await add_driver(db, "Dana", 101)
    second = await add_driver(db, "Eli", 102)
    for target in ALL:
        order = await new_order(db, pickup=pickup)
        for step in path_to(start, pickup):
            await move(db, order.id, step, first.id)
        before = await snapshot(db, order.id)
        assert before[0] is start
        driver = second.id if target is S.ASSIGNED and start is S.ASSIGNED else first.id
        if target in expected:
            event = await move(db, order.id, target, driver)
            status, events, _ = await snapshot(db, order.id)
            assert status is target
            assert events == before[1] + 1
            assert (event.from_status, event.to_status) == (start, target)
        else:
            with pytest.raises(TransitionRefused) as refused:
                await orders.change_status(db, order.id, target, SYSTEM, change_for(target, driver))
            message = str(refused.value)
            assert f"Order #{order.id} " in message  # as people know it (no shop reference)
            assert "_" not in message, message  # human words, not status codes
            assert await snapshot(db, order.id) == before


async def test_refusal_messages_say_what_to_do(db: Database):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    with pytest.raises(
        TransitionRefused, match="Order #1 is new, so it cannot be marked delivered"
    ):
        await move(db, order.id, S.DELIVERED)
    await move(db, order.id, S.CANCELLED)
    with pytest.raises(TransitionRefused, match="cancelled already; that is final"):
        await move(db, order.id, S.ASSIGNED, driver.id)
    pickup = await new_order(db, pickup=True)
    await move(db, pickup.id, S.ASSIGNED, driver.id)
    with pytest.raises(TransitionRefused, match="mark it picked up first"):
        await move(db, pickup.id, S.OUT_FOR_DELIVERY)


async def test_assignment_needs_a_real_active_driver(db: Database):
    order = await new_order(db)
    before = await snapshot(db, order.id)
    sleeping = await add_driver(db, "Old", 103, active=False)
    for change, text in [
        (Change(), "Say which driver"),
        (Change(driver_id=999), "There is no driver 999"),
        (Change(driver_id=sleeping.id), "deactivated"),
    ]:
        with pytest.raises(TransitionRefused, match=text):
            await orders.change_status(db, order.id, S.ASSIGNED, SYSTEM, change)
    assert await snapshot(db, order.id) == before
    driver = await add_driver(db, "Dana", 101)
    await move(db, order.id, S.ASSIGNED, driver.id)
    with pytest.raises(TransitionRefused, match="assigned to that driver already"):
        await move(db, order.id, S.ASSIGNED, driver.id)


async def test_unknown_order_is_reported(db: Database):
    with pytest.raises(NotFound, match="There is no order 42"):
        await move(db, 42, S.CANCELLED)


async def test_failure_needs_a_reason(db: Database):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    for step in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED):
        await move(db, order.id, step, driver.id)
    before = await snapshot(db, order.id)
    for reason in (None, "", "   "):
        with pytest.raises(TransitionRefused, match="Say why order"):
            await orders.change_status(db, order.id, S.FAILED, SYSTEM, Change(reason=reason))
    assert await snapshot(db, order.id) == before
    event = await move(db, order.id, S.FAILED)
    assert event.data["reason"] == "nobody home"


@pytest.mark.parametrize("proof", [ProofKind.PHOTO, ProofKind.SIGNATURE, ProofKind.PIN])
async def test_delivery_needs_the_required_proof(db: Database, proof: ProofKind):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db, proof=proof)
    for step in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED):
        await move(db, order.id, step, driver.id)
    with pytest.raises(TransitionRefused, match="as proof before it can be marked delivered"):
        await move(db, order.id, S.DELIVERED)
    async with db.transaction() as session:  # a proof of another kind does not count
        other = ProofKind.SIGNATURE if proof is ProofKind.PHOTO else ProofKind.PHOTO
        session.add(Proof(order_id=order.id, kind=other))
        if proof is ProofKind.PIN:
            session.add(Proof(order_id=order.id, kind=ProofKind.PIN, pin_checked=False))
    with pytest.raises(TransitionRefused):
        await move(db, order.id, S.DELIVERED)
    async with db.transaction() as session:
        session.add(Proof(order_id=order.id, kind=proof, pin_checked=proof is ProofKind.PIN))
    await move(db, order.id, S.DELIVERED)
    assert (await snapshot(db, order.id))[0] is S.DELIVERED


async def test_attempts_count_and_the_attempt_limit(db: Database):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    for attempt in (1, 2, 3):
        for step in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED):
            await move(db, order.id, step, driver.id)
        async with db.sessions() as session:
            assert (await session.get(Order, order.id)).attempts == attempt
        if attempt < 3:
            await move(db, order.id, S.RESCHEDULED)
    with pytest.raises(TransitionRefused, match="3 delivery attempts, the most allowed"):
        await move(db, order.id, S.RESCHEDULED)
    rules = OrdersSettings(max_attempts=4)
    change = change_for(S.RESCHEDULED, None)
    await orders.change_status(db, order.id, S.RESCHEDULED, SYSTEM, change, rules=rules)


async def test_reschedule_replaces_windows_and_frees_the_driver(db: Database):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    for step in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED):
        await move(db, order.id, step, driver.id)
    start = DAY + timedelta(days=2, hours=15)
    change = Change(windows=[Window(start, start + timedelta(hours=2))])
    await orders.change_status(db, order.id, S.RESCHEDULED, Actor.member(1), change)
    async with db.sessions() as session:
        saved = await session.get(Order, order.id)
        assert saved.driver_id is None and saved.final_at is None
        windows = (await session.exec(select(OrderWindow))).all()
        assert [(w.starts_at, w.ends_at) for w in windows] == [(start, start + timedelta(hours=2))]
        event = (await session.exec(select(OrderEvent).order_by(OrderEvent.id.desc()))).first()
        assert event.actor == "member:1" and event.actor_member_id == 1
        assert event.data["previous_driver_id"] == driver.id


async def test_final_states_record_when(db: Database):
    order = await new_order(db)
    await move(db, order.id, S.CANCELLED)
    async with db.sessions() as session:
        saved = await session.get(Order, order.id)
        assert saved.final_at is not None and saved.final_at.tzinfo is not None


async def test_events_are_append_only(db: Database):
    order = await new_order(db)
    with pytest.raises(AppendOnlyError):
        async with db.transaction() as session:
            event = (await session.exec(select(OrderEvent))).one()
            event.kind = "rewritten"
            session.add(event)
    with pytest.raises(AppendOnlyError):
        async with db.transaction() as session:
            await session.delete((await session.exec(select(OrderEvent))).one())
    async with db.sessions() as session:
        event = (await session.exec(select(OrderEvent))).one()
        assert (event.kind, event.order_id) == ("created", order.id)


def test_windows_must_end_after_they_start():
    with pytest.raises(Exception, match="must end after it starts"):
        Window(DAY, DAY)
