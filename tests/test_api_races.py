"""Concurrent clients of the REST API on one database: one phone is one customer, retries at once
answer the order made first, overlapping batches both succeed. PostgreSQL is where these race;
on SQLite (one writer at a time) they run too and must answer the same."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from sqlmodel import col, select

from core.db import Database
from core.models import Customer, Order, OutboxMessage
from core.people import members
from core.people.identities import Person, telegram_chat
from tests.factories import count
from tests.test_api import ORDER
from tests.test_api import api as api  # the fixture

AT_ONCE = 20
TRIALS = 10


def phone(n: int) -> str:
    return f"+49151{20000000 + n}"


async def test_one_phone_is_one_customer_and_a_subscriber_hears_of_later_orders(
    api: httpx.AsyncClient,
    db: Database,
):
    number = phone(1)
    answers = await asyncio.gather(
        *(
            api.post("/orders", json={**ORDER, "external_ref": f"C-{n}", "customer_phone": number})
            for n in range(AT_ONCE)
        )
    )
    assert Counter(a.status_code for a in answers) == {201: AT_ONCE}, [a.text for a in answers]
    async with db.reads() as session:
        customers = (await session.exec(select(Customer).where(Customer.phone == number))).all()
        owners = set((await session.exec(select(Order.customer_id))).all())
    assert len(customers) == 1, f"{len(customers)} customers for one phone"
    assert owners == {customers[0].id}

    # she subscribes through the last order's link; the next order for her phone reaches her
    token = answers[-1].json()["tracking_url"].rsplit("/", 1)[1]
    await members.subscribe(db, token, telegram_chat(77, 77), Person("Ana"))
    later = await api.post(
        "/orders", json={**ORDER, "external_ref": "C-later", "customer_phone": number}
    )
    assert later.status_code == 201, later.text
    async with db.reads() as session:
        told = (
            await session.exec(
                select(OutboxMessage.template).where(OutboxMessage.order_id == later.json()["id"])
            )
        ).all()
    assert "customer.order_confirmed" in told


async def retries(api: httpx.AsyncClient, body: dict, headers: dict[str, str]) -> list:
    return await asyncio.gather(
        *(api.post("/orders", json=body, headers=headers) for _ in range(AT_ONCE))
    )


async def test_the_same_key_and_body_at_once_answer_one_order(api: httpx.AsyncClient, db: Database):
    wrong = []
    for trial in range(TRIALS):
        body = {**ORDER, "external_ref": f"K-{trial}", "customer_phone": phone(100 + trial)}
        answers = await retries(api, body, {"Idempotency-Key": f"key-{trial}"})
        codes = Counter(a.status_code for a in answers)
        ids = {a.json().get("id") for a in answers}
        if codes != {201: 1, 200: AT_ONCE - 1} or len(ids) != 1:
            wrong.append(dict(codes))
    assert wrong == [], f"{len(wrong)} of {TRIALS} trials: {wrong}"
    assert await count(db, Order) == TRIALS


async def test_the_same_reference_at_once_answers_one_order(api: httpx.AsyncClient, db: Database):
    wrong = []
    for trial in range(TRIALS):
        body = {**ORDER, "external_ref": f"R-{trial}", "customer_phone": phone(200 + trial)}
        answers = await retries(api, body, {})
        codes = Counter(a.status_code for a in answers)
        ids = {a.json().get("id") for a in answers}
        if codes != {201: 1, 200: AT_ONCE - 1} or len(ids) != 1:
            wrong.append(dict(codes))
    assert wrong == [], f"{len(wrong)} of {TRIALS} trials: {wrong}"
    assert await count(db, Order) == TRIALS


async def test_a_key_sent_at_once_with_two_bodies_refuses_the_loser(
    api: httpx.AsyncClient,
    db: Database,
):
    for trial in range(TRIALS // 2):
        one = {**ORDER, "external_ref": f"T-{trial}", "customer_phone": phone(300 + trial)}
        bodies = [one, {**one, "address": "Elsewhere 1"}] * (AT_ONCE // 2)
        headers = {"Idempotency-Key": f"two-{trial}"}
        answers = await asyncio.gather(
            *(api.post("/orders", json=body, headers=headers) for body in bodies)
        )
        made = [a for a in answers if a.status_code == 201]
        assert len(made) == 1, Counter(a.status_code for a in answers)
        winner = made[0].json()
        for body, answer in zip(bodies, answers, strict=True):
            if body["address"] == winner["address"]:
                assert answer.status_code in (200, 201) and answer.json()["id"] == winner["id"]
            else:
                assert answer.status_code == 409, answer.text
                assert f"two-{trial}" in answer.json()["detail"]
    assert await count(db, Order) == TRIALS // 2


async def test_overlapping_batches_in_opposite_order_both_succeed(
    api: httpx.AsyncClient,
    db: Database,
):
    size = 30
    for trial in range(5):
        items = [
            {**ORDER, "external_ref": f"B{trial}-{n:02d}", "customer_phone": phone(1000 + n)}
            for n in range(size)
        ]
        forward, backward = await asyncio.gather(
            api.post("/orders/batch", json={"orders": items}),
            api.post("/orders/batch", json={"orders": items[::-1]}),
        )
        for answer in (forward, backward):
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        made: dict[str, list[str]] = {}
        ids: dict[str, set[int]] = {}
        for answer in (forward, backward):
            for item in answer.json()["items"]:
                ref = item["order"]["external_ref"]
                made.setdefault(ref, []).append(item["result"])
                ids.setdefault(ref, set()).add(item["order"]["id"])
        assert all(sorted(results) == ["created", "existing"] for results in made.values()), made
        assert all(len(found) == 1 for found in ids.values())
    assert await count(db, Order) == 5 * size
    assert await count(db, Customer, col(Customer.phone).is_not(None)) == size


async def test_batches_sharing_customers_in_crossed_order_both_succeed(
    api: httpx.AsyncClient,
    db: Database,
):
    """Different references, the same phones in opposite order: the customers are shared."""
    size = 30
    for trial in range(5):
        first = [
            {**ORDER, "external_ref": f"X{trial}-{n:02d}", "customer_phone": phone(2000 + n)}
            for n in range(size)
        ]
        second = [
            {**ORDER, "external_ref": f"Y{trial}-{n:02d}", "customer_phone": phone(2000 + size - n)}
            for n in range(size)
        ]
        answers = await asyncio.gather(
            api.post("/orders/batch", json={"orders": first}),
            api.post("/orders/batch", json={"orders": second}),
        )
        for answer in answers:
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
            assert answer.json()["created"] == size
    assert await count(db, Order) == 5 * 2 * size
    assert await count(db, Customer, col(Customer.phone).is_not(None)) == size + 1
