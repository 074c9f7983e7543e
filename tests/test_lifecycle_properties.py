"""Random sequences of actions against the lifecycle, checked against a model written here."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from core.db import Database
from core.models import Member, OrderEvent, OutboxMessage, Role
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change, TransitionRefused
from tests.factories import S, add_driver, add_member, change_for, link_customer, new_order
from tests.test_lifecycle import EXPECTED_DELIVERY, EXPECTED_PICKUP_DELIVERY

MAX_ATTEMPTS = 3
CHAT_IDS = itertools.count(10_000)  # examples share one database; identities must not repeat


@dataclass(frozen=True)
class Step:
    target: S
    driver: int  # index into the two drivers
    complete: bool  # False leaves out what the transition needs (driver, reason)


steps = st.builds(
    Step,
    target=st.sampled_from(list(S)),
    driver=st.integers(0, 1),
    complete=st.booleans(),
)


@dataclass
class Model:
    status: S = S.NEW
    driver: int | None = None
    attempts: int = 0

    def accepts(self, step: Step, pickup: bool) -> bool:
        allowed = (EXPECTED_PICKUP_DELIVERY if pickup else EXPECTED_DELIVERY)[self.status]
        if step.target not in allowed:
            return False
        if step.target is S.ASSIGNED:
            same = self.status is S.ASSIGNED and self.driver == step.driver
            return step.complete and not same
        if step.target is S.FAILED:
            return step.complete
        if step.target is S.RESCHEDULED:
            return self.attempts < MAX_ATTEMPTS
        return True

    def recipients(self, step: Step, members: dict[str, int]) -> set[tuple[int, str]]:
        """Who the rules in the issue say hears about this transition, before applying it."""
        target, heard = step.target, set()
        templates = {
            S.PICKED_UP: "customer.order_picked_up",
            S.OUT_FOR_DELIVERY: "customer.order_out_for_delivery",
            S.ARRIVED: "customer.driver_arrived",
            S.DELIVERED: "customer.order_delivered",
            S.FAILED: "customer.order_failed",
            S.RESCHEDULED: "customer.order_rescheduled",
            S.RETURNED: "customer.order_returned",
            S.CANCELLED: "customer.order_cancelled",
        }
        if target in templates:
            heard.add((members["customer"], templates[target]))
        driver_after = step.driver if target is S.ASSIGNED else self.driver
        if target in (S.NEW, S.RESCHEDULED):
            driver_after = None
        if target is S.ASSIGNED:
            heard.add((members[f"driver{step.driver}"], "driver.order_assigned"))
        if self.driver is not None and self.driver != driver_after:
            heard.add((members[f"driver{self.driver}"], "driver.order_unassigned"))
        elif target is S.CANCELLED and self.driver is not None:
            heard.add((members[f"driver{self.driver}"], "driver.order_cancelled"))
        if target is S.FAILED:
            heard.add((members["dispatcher"], "dispatcher.order_failed"))
        if target is S.RETURNED:
            heard.add((members["dispatcher"], "dispatcher.order_returned"))
        return heard

    def apply(self, step: Step) -> None:
        if step.target is S.ASSIGNED:
            self.driver = step.driver
        if step.target in (S.NEW, S.RESCHEDULED):
            self.driver = None
        if step.target is S.OUT_FOR_DELIVERY:
            self.attempts += 1
        self.status = step.target


async def play(url: str, pickup: bool, actions: list[Step]) -> None:
    db = Database(url)
    dispatcher = None
    try:
        drivers = [await add_driver(db, f"D{i}", next(CHAT_IDS)) for i in range(2)]
        dispatcher = await add_member(
            db, "Disp", [Role.DISPATCHER], telegram_chat_id=next(CHAT_IDS)
        )
        customer = await add_member(db, "Carla", [Role.CUSTOMER], whatsapp_phone="+491511234567")
        order = await new_order(db, pickup=pickup)
        await link_customer(db, order.customer_id, customer)
        members = {
            "customer": customer.id,
            "dispatcher": dispatcher.id,
            "driver0": drivers[0].member_id,
            "driver1": drivers[1].member_id,
        }
        model = Model()
        for step in actions:
            change = change_for(step.target, drivers[step.driver].id)
            if not step.complete:
                change = Change()
            async with db.sessions() as session:
                seen_events = len((await session.exec(select(OrderEvent.id))).all())
                seen_rows = len((await session.exec(select(OutboxMessage.id))).all())
            expected = model.recipients(step, members)
            try:
                event = await orders.change_status(db, order.id, step.target, SYSTEM, change)
            except TransitionRefused:
                assert not model.accepts(step, pickup), (model, step)
                accepted = False
            else:
                assert model.accepts(step, pickup), (model, step)
                accepted = True
                model.apply(step)
            async with db.sessions() as session:
                events = (await session.exec(select(OrderEvent).order_by(OrderEvent.id))).all()
                rows = (await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()
                saved = await session.get(type(order), order.id)
            assert saved.status is model.status
            assert saved.attempts == model.attempts
            assert saved.status in S
            if not accepted:
                assert (len(events), len(rows)) == (seen_events, seen_rows)
                continue
            assert len(events) == seen_events + 1
            assert events[-1].id == event.id and events[-1].to_status is step.target
            new_rows = rows[seen_rows:]
            assert {(r.recipient_member_id, r.template) for r in new_rows} == expected
            assert all(f"order-event:{event.id}:" in r.idempotency_key for r in new_rows)
            assert all(len(r.actions) <= 3 and r.order_id == order.id for r in new_rows)
        chain = [(e.from_status, e.to_status) for e in events if e.order_id == order.id]
        assert chain[0] == (None, S.NEW)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chain))
    finally:
        if dispatcher is not None:  # examples share the database: failure alerts go to every
            async with db.transaction() as session:  # active dispatcher, so retire this one
                retired = await session.get(Member, dispatcher.id)
                retired.active = False
                session.add(retired)
        await db.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pickup=st.booleans(), actions=st.lists(steps, min_size=1, max_size=14))
def test_random_action_sequences_keep_the_order_valid(
    database_url: str, pickup: bool, actions: list[Step]
):
    asyncio.run(play(database_url, pickup, actions))
