"""Merchant webhooks: what is refused (bad URLs, bodies, keys, log parameters, redeliveries),
that only committed changes are sent, and failures that must still end as logged attempts.
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import (
    func,
    select,
)

from core.config import WebhooksSettings
from core.db import Database
from core.drivers.stops import Stops
from core.merchants import apikeys, deliveries, queue
from core.merchants.sender import WebhookSender
from core.models import (
    ApiKey,
    OutboxStatus,
    WebhookAttempt,
)
from core.models import (
    WebhookDelivery as Delivery,
)
from core.orders import lifecycle
from core.orders.lifecycle import (
    SYSTEM,
    Actor,
    Change,
    TransitionRefused,
)
from core.orders.service import OrderDraft
from tests.conftest import serve
from tests.factories import (
    DAY,
    add_driver,
    count,
    move,
    new_order,
)
from tests.webhooks.harness import (
    LOOPBACK,
    ORDER,
    Clock,
    Receiver,
    S,
    Stack,
    check_signed,
    query_errors,
    rows,
    running,
    sent,
)

# --- refusals -----------------------------------------------------------------------------------


GOOD_URL = "https://shop.example.com/lastmile"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "ftp://x"}, "url", "must be an http:// or https:// address"),
        ({"url": "http://example.com/hook"}, "url", "must use https://"),
        ({"url": "http://localhost.evil.example/hook"}, "url", "must use https://"),
        ({"url": "http://10.0.0.8/hook"}, "url", "must use https://"),
        ({"url": "not a url"}, "url", "must be an http:// or https:// address"),
        ({"url": "https://"}, "url", "must be an http:// or https:// address"),
        ({"url": "javascript:alert(1)"}, "url", "must be an http:// or https:// address"),
        ({"url": ""}, "url", "at least 1 character"),
        ({"url": "   "}, "url", "at least 1 character"),
        ({"url": "https://shop.example.com/" + "a" * 3000}, "url", "at most 2000 characters"),
        ({"url": "https://shop.example.com/\x00"}, "url", "NUL"),
        ({"url": 42}, "url", "valid string"),
        ({}, "url", "Field required"),
        ({"url": GOOD_URL, "secret": "whsec_mine"}, "secret", "Extra inputs"),
        ({"url": GOOD_URL, "all_orders": "maybe"}, "all_orders", "valid boolean"),
    ],
)
async def test_bad_webhook_urls_are_refused_and_change_nothing(stack: Stack, body, field, words):
    shop = await stack.merchant("shop")
    before = await shop.listen()
    refused = await shop.api.put("/webhook", json=body)
    problems = query_errors(refused)
    assert field in problems, problems
    assert words in problems[field]
    assert (await shop.api.get("/webhook")).json() == before


async def test_webhook_setting_refuses_unreadable_bodies(stack: Stack):
    shop = await stack.merchant("shop")
    before = await shop.listen()
    for content, status in (
        (b"{not json", 400),
        (b"", 422),
        (b"[]", 422),
        (b'"https://shop.example.com"', 422),
    ):
        response = await shop.api.put(
            "/webhook", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, (content, response.status_code)
        assert response.json()["detail"], content
        if status == 400:
            assert response.json()["detail"] == "The body is not well-formed JSON."
    assert (await shop.api.get("/webhook")).json() == before


async def test_webhook_calls_need_a_live_key(stack: Stack):
    shop = await stack.merchant("shop")
    before = await shop.listen()
    await shop.order("A-1")
    [entry] = await shop.log_when("sent", sent(1))
    calls = [
        ("GET", "/webhook", None),
        ("PUT", "/webhook", {"url": GOOD_URL}),
        ("DELETE", "/webhook", None),
        ("POST", "/webhook/secret", None),
        ("GET", "/webhook/deliveries", None),
        ("POST", f"/webhook/deliveries/{entry['id']}/redeliver", None),
    ]
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer lm_00000000_nope"},
        {"Authorization": "", "X-API-Key": before["secret"]},  # the webhook secret is no API key
    ):
        for method, path, body in calls:
            response = await shop.api.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert "API key" in response.json()["detail"]
    assert (await shop.api.get("/webhook")).json() == before
    assert await shop.log() == [entry]
    assert len(stack.receiver.hits) == 1


async def test_redeliver_refusals(stack: Stack):
    shop = await stack.merchant("shop")
    other = await stack.merchant("other")
    await shop.listen()
    await other.listen()
    await shop.order("X-1")
    [entry] = await shop.log_when("sent", sent(1))

    stolen = await other.api.post(f"/webhook/deliveries/{entry['id']}/redeliver")
    assert stolen.status_code == 404
    assert stolen.json() == {"detail": f"This API key has no webhook delivery {entry['id']}."}
    unknown = await shop.api.post("/webhook/deliveries/999999/redeliver")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "This API key has no webhook delivery 999999."}
    for bad in ("0", "-1", "abc", str(2**31), "1.5"):
        response = await shop.api.post(f"/webhook/deliveries/{bad}/redeliver")
        assert response.status_code == 422, (bad, response.text)
    assert await shop.log() == [entry]  # nothing was touched
    assert await other.log() == []
    assert len(stack.receiver.hits) == 1

    # a delivery being sent right now cannot be sent again at the same time
    stack.receiver.script = [500]
    await shop.order("X-2")
    await shop.log_when(  # the failed try recorded (its transaction over), the retry waiting
        "a retry waiting",
        lambda log: len(log) == 2 and (log[0]["status"], log[0]["attempts"]) == ("pending", 1),
    )
    [leased] = await queue.claim(stack.db, now=stack.clock() + timedelta(hours=1))
    busy = await shop.api.post(f"/webhook/deliveries/{leased.id}/redeliver")
    assert busy.status_code == 409
    assert (
        busy.json()["detail"] == f"Webhook delivery {leased.id} is being sent right now; try again."
    )
    await queue.release(stack.db, [leased.id])
    await shop.log_when("both sent", sent(2))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "99999999999"}, "cursor"),
        ({"cursor": "9999999999"}, "cursor"),
        ({"cursor": "-1"}, "cursor"),
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"order_id": 0}, "order_id"),
        ({"order_id": "x"}, "order_id"),
    ],
)
async def test_bad_log_parameters_name_the_parameter(stack: Stack, params, field):
    shop = await stack.merchant("shop")
    response = await shop.api.get("/webhook/deliveries", params=params)
    problems = query_errors(response)
    assert field in problems, problems


# --- one transaction ----------------------------------------------------------------------------


async def test_a_change_that_does_not_happen_sends_nothing(stack: Stack):
    shop = await stack.merchant("shop")
    await shop.listen()
    first = await shop.order("T-1")
    again = await shop.api.post("/orders", json={**ORDER, "external_ref": "T-1"})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    order_id = first["id"]
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    await move(stack.db, order_id, S.ASSIGNED, driver.id)
    await shop.log_when("created and assigned sent", sent(2))
    assert await count(stack.db, Delivery) == 2  # the repeated create made no second "created"

    # refused by the state machine, directly and through the API
    with pytest.raises(TransitionRefused):
        await move(stack.db, order_id, S.DELIVERED, driver.id)
    await move(stack.db, order_id, S.CANCELLED)
    refused = await shop.api.post(f"/orders/{order_id}/cancel")
    assert refused.status_code == 409
    assert await count(stack.db, Delivery) == 3  # only the real cancellation

    # a change made in a transaction that then fails leaves no delivery behind
    second = (await shop.order("T-2"))["id"]
    await shop.log_when("4 sent", sent(4))
    with pytest.raises(RuntimeError, match="after the change"):
        async with stack.db.transaction() as session:
            await lifecycle.transition(
                session, second, S.ASSIGNED, SYSTEM, Change(driver_id=driver.id)
            )
            inside = (await session.exec(select(func.count()).select_from(Delivery))).one()
            assert inside == 5  # written with the change, in its transaction
            raise RuntimeError("the caller fails after the change")
    assert await count(stack.db, Delivery) == 4
    assert (await shop.api.get(f"/orders/{second}")).json()["status"] == "new"
    stack.clock.advance(hours=1)
    assert await stack.nothing_due()
    assert len(stack.receiver.hits) == 4


async def test_an_undone_status_change_is_sent_too(stack: Stack):
    shop = await stack.merchant("shop")
    secret = (await shop.listen())["secret"]
    order_id = (await shop.order("U-1"))["id"]
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    await move(stack.db, order_id, S.ASSIGNED, driver.id)
    stops = Stops(stack.db)
    actor = Actor.member(driver.member_id)
    await stops.arrive(driver.id, order_id, actor)
    await stops.deliver(driver.id, order_id, actor)
    back = await stops.undo(driver.id, order_id, actor, within=timedelta(minutes=5))
    assert back is S.ARRIVED
    assert (await shop.api.get(f"/orders/{order_id}")).json()["status"] == "arrived"

    types = [row.event_type for row in await rows(stack.db, Delivery.order_id == order_id)]
    assert types[-1] == "order.status_undone", types
    hits = await stack.hits(shop.path, len(types))
    undone = max(hits, key=lambda hit: hit.delivery)
    check_signed(undone, secret)
    data = undone.json["data"]
    assert (data["status"], data["previous_status"]) == ("arrived", "delivered")


# --- refusals and failures that once slipped through -----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com:abc/hook",
        "https://shop.example.com:99999/hook",
        "https://shop.exa\nmple.com/hook",
        "https://shop example.com/hook",
    ],
)
async def test_unusable_webhook_urls_are_refused(stack: Stack, url: str):
    shop = await stack.merchant("shop")
    before = await shop.listen()
    problems = query_errors(await shop.api.put("/webhook", json={"url": url}))
    assert "url" in problems
    assert (await shop.api.get("/webhook")).json() == before


async def test_a_url_httpx_cannot_use_is_logged_as_a_failed_attempt_and_gives_up(db: Database):
    key, _ = await apikeys.create_key(db, "shop")
    async with db.transaction() as session:  # saved before PUT /webhook refused such URLs
        row = await session.get(ApiKey, key.id)
        assert row is not None
        row.webhook_url = "https://shop.example.com:abc/hook"
        row.webhook_secret = deliveries.new_secret()
        row.webhook_all_orders = True
        session.add(row)
    await new_order(db, ref="I-1")
    clock = Clock()
    sender = WebhookSender(db, WebhooksSettings(allow_private=True), clock=clock)
    try:
        assert await sender.drain_once() is True
        [delivery] = await rows(db)
        assert (delivery.status, delivery.attempts) == (OutboxStatus.PENDING, 1)
        assert await count(db, WebhookAttempt) == 1
        clock.advance(hours=25)
        assert await sender.drain_once() is True
        [delivery] = await rows(db)
        assert delivery.status is OutboxStatus.DEAD
    finally:
        await sender.stop()


async def test_an_answer_with_a_nul_byte_is_logged(db: Database, request: pytest.FixtureRequest):
    """A receiver may answer 200 with any bytes (binary, say); the first 500 are logged."""
    key, _ = await apikeys.create_key(db, "shop")
    assert key.id is not None
    receiver = Receiver()
    receiver.content = b"ok\x00\x01\x02"
    clock = Clock()
    sender = WebhookSender(db, WebhooksSettings(timeout_s=5, allow_private=True), clock=clock)
    try:
        async with serve(receiver.app) as hook:
            await deliveries.set_url(db, key.id, f"{hook}/hook/shop", rules=LOOPBACK)
            order_id, _ = await apikeys.create_order(
                db,
                key,
                OrderDraft(
                    customer_name="Carla",
                    address="Hauptstr. 5, Berlin",
                    windows=(lifecycle.Window(DAY.replace(hour=9), DAY.replace(hour=12)),),
                ),
            )
            assert await sender.drain_once() is True
            clock.advance(minutes=2)  # past any lease
            assert await sender.drain_once() is False
    finally:
        await sender.stop()
    [delivery] = await rows(db)
    assert (delivery.status, delivery.attempts, delivery.order_id) == (
        OutboxStatus.SENT,
        1,
        order_id,
    )
    async with db.reads() as session:
        [attempt] = list(await session.exec(select(WebhookAttempt)))
    assert attempt.status_code == 200
    assert len(receiver.hits) == 1


# --- a merchant's URL must not reach into our own network ----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.8/hook",
        "https://127.0.0.1:8443/hook",
        "http://127.0.0.1:8080/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://printer.local/hook",
        "https://0.0.0.0/hook",
    ],
)
async def test_private_addresses_are_refused_by_default(db: Database, tmp_path: Path, url: str):
    async with running(db, tmp_path, allow_private=False) as guarded:
        shop = await guarded.merchant("shop")
        before = (await shop.api.get("/webhook")).json()
        problems = query_errors(await shop.api.put("/webhook", json={"url": url}))
        assert "not to" in problems["url"] and "WEBHOOKS_ALLOW_PRIVATE" in problems["url"]
        assert (await shop.api.get("/webhook")).json() == before


async def test_a_name_that_resolves_to_a_private_address_is_not_posted_to(db: Database):
    """Names are checked when sent: "localhost" here stands for any name whose DNS answer is
    a private address (saved before, or by an operator's own hand)."""
    key, _ = await apikeys.create_key(db, "shop")
    receiver = Receiver()
    async with serve(receiver.app) as hook:
        port = hook.rsplit(":", 1)[1]
        async with db.transaction() as session:
            row = await session.get(ApiKey, key.id)
            assert row is not None
            row.webhook_url = f"http://localhost:{port}/hook/shop"
            row.webhook_secret = deliveries.new_secret()
            row.webhook_all_orders = True
            session.add(row)
        await new_order(db, ref="L-1")
        clock = Clock()
        guarded = WebhookSender(db, WebhooksSettings(timeout_s=5), clock=clock)
        try:
            assert await guarded.drain_once() is True
        finally:
            await guarded.stop()
        async with db.reads() as session:
            [attempt] = list(await session.exec(select(WebhookAttempt)))
        assert attempt.status_code is None and "not a public address" in (attempt.error or "")
        assert receiver.hits == []

        clock.advance(hours=1)  # the same delivery with the guard off (WEBHOOKS_ALLOW_PRIVATE)
        trusting = WebhookSender(db, LOOPBACK, clock=clock)
        try:
            assert await trusting.drain_once() is True
        finally:
            await trusting.stop()
    [delivery] = await rows(db)
    assert delivery.status is OutboxStatus.SENT and len(receiver.hits) == 1
