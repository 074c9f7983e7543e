"""Merchant webhooks over real connections: every status change reaches the merchant signed,
failed deliveries are retried with the same bytes until they land or their day is over, and
each key hears only of its own orders. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import (
    col,
    select,
)

from core.config import WebhooksSettings
from core.db import Database
from core.merchants import apikeys, deliveries
from core.merchants.sender import WebhookSender
from core.models import (
    OutboxStatus,
    WebhookAttempt,
)
from core.models import (
    WebhookDelivery as Delivery,
)
from core.orders import lifecycle
from core.orders.service import OrderDraft
from tests.conftest import (
    free_port,
    serve,
)
from tests.factories import (
    DAY,
    add_driver,
    count,
    move,
    new_order,
)
from tests.webhooks.harness import (
    BASE,
    LOOPBACK,
    ORDER,
    Clock,
    Receiver,
    S,
    Stack,
    check_signed,
    events_of,
    expected_signature,
    moment,
    rows,
    running,
    sent,
    until,
)

# --- what a merchant receives -------------------------------------------------------------------


async def test_each_status_change_reaches_the_merchant_signed(stack: Stack):
    shop = await stack.merchant("shop")
    blank = (await shop.api.get("/webhook")).json()
    assert blank == {
        "url": None,
        "all_orders": False,
        "secret": None,
        "signature_header": "Lastmile-Signature",
    }
    setup = await shop.listen()
    assert setup["url"] == shop.url and setup["all_orders"] is False
    assert setup["signature_header"] == "Lastmile-Signature"
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", setup["secret"]), setup["secret"]
    assert (await shop.api.get("/webhook")).json() == setup
    secret = setup["secret"]

    driver = await add_driver(stack.db, "Dana Berg", 5001)
    delivered = await shop.order("W-1")
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED):
        await move(stack.db, delivered["id"], target, driver.id)
    failed = await shop.order("W-2")
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED):
        await move(stack.db, failed["id"], target, driver.id)

    log = await shop.log_when("9 deliveries sent", sent(9))
    hits = sorted(stack.receiver.at(shop.path), key=lambda hit: hit.delivery)
    assert len(hits) == 9  # one request each: nothing was sent twice

    d = driver.id
    one, two = delivered["id"], failed["id"]
    changed = "order.status_changed"
    assert [
        (
            h.json["type"],
            h.json["data"]["order_id"],
            h.json["data"]["status"],
            h.json["data"]["previous_status"],
            h.json["data"]["attempt"],
            h.json["data"]["driver_id"],
            h.json["data"]["reason"],
        )
        for h in hits
    ] == [
        ("order.created", one, "new", None, 0, None, None),
        (changed, one, "assigned", "new", 0, d, None),
        (changed, one, "out_for_delivery", "assigned", 1, d, None),
        (changed, one, "arrived", "out_for_delivery", 1, d, None),
        (changed, one, "delivered", "arrived", 1, d, None),
        ("order.created", two, "new", None, 0, None, None),
        (changed, two, "assigned", "new", 0, d, None),
        (changed, two, "out_for_delivery", "assigned", 1, d, None),
        (changed, two, "failed", "out_for_delivery", 1, d, "nobody home"),
    ]
    events = await events_of(stack.db, one) + await events_of(stack.db, two)
    assert len(events) == 9
    for hit, event, order in zip(hits, events, [delivered] * 5 + [failed] * 4, strict=True):
        check_signed(hit, secret)
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["lastmile-event"] == hit.json["type"]
        assert hit.body == json.dumps(hit.json, separators=(",", ":"), sort_keys=True).encode()
        assert set(hit.json) == {"id", "type", "created_at", "data"}
        assert hit.json["id"] == f"evt_{event.id}"
        assert moment(hit.json["created_at"]) == event.created_at
        data = hit.json["data"]
        assert data["external_ref"] == order["external_ref"]
        assert data["tracking_url"] == order["tracking_url"]
        assert data["tracking_url"].startswith(f"{BASE}/t/")

    # the log: newest first, each with its one attempt, the body as it was sent
    assert [entry["id"] for entry in log] == sorted((hit.delivery for hit in hits), reverse=True)
    by_id = {hit.delivery: hit for hit in hits}
    for entry in log:
        hit = by_id[entry["id"]]
        assert entry["body"] == hit.json
        assert entry["event_type"] == hit.headers["lastmile-event"]
        assert entry["order_id"] == hit.json["data"]["order_id"]
        assert (entry["attempts"], entry["last_status_code"], entry["last_error"]) == (1, 200, None)
        assert entry["delivered_at"] is not None and entry["next_attempt_at"] is None
        [attempt] = entry["attempt_log"]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        assert attempt["url"] == shop.url
        assert attempt["response_excerpt"] == "receiver says 200"

    # pages of 4, filters
    walked, cursor = [], None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await shop.api.get("/webhook/deliveries", params=params)).json()
        walked += [entry["id"] for entry in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [entry["id"] for entry in log]
    only_two = await shop.log(order_id=two)
    assert [entry["body"]["data"]["order_id"] for entry in only_two] == [two] * 4
    assert await shop.log(status="pending") == []
    assert len(await shop.log(status="sent")) == 9


async def test_a_failing_receiver_gets_the_same_signed_bytes_until_it_answers(stack: Stack):
    shop = await stack.merchant("shop")
    secret = (await shop.listen())["secret"]
    stack.receiver.script = [500, "hang"]  # then 200
    order = await shop.order("R-1")

    def tried(n: int, status: str) -> Callable[[list[dict[str, Any]]], bool]:
        return lambda log: (
            len(log) == 1 and len(log[0]["attempt_log"]) == n and log[0]["status"] == status
        )

    [first] = await shop.log_when("the first try logged", tried(1, "pending"))
    assert first["last_status_code"] == 500 and first["last_error"] == "HTTP 500"
    assert first["next_attempt_at"] is not None
    assert len(stack.receiver.hits) == 1  # the retry waits for its backoff (30 s on the clock)

    stack.clock.advance(minutes=5)
    [second] = await shop.log_when("the second try logged", tried(2, "pending"))
    assert second["last_status_code"] is None and "Timeout" in second["last_error"]

    stack.clock.advance(minutes=10)
    [final] = await shop.log_when("the third try logged", tried(3, "sent"))
    assert (final["attempts"], final["last_status_code"], final["last_error"]) == (3, 200, None)
    assert final["delivered_at"] is not None and final["next_attempt_at"] is None

    attempts = final["attempt_log"]
    assert [a["status_code"] for a in attempts] == [500, None, 200]
    assert attempts[0]["error"] == "HTTP 500"
    assert attempts[0]["response_excerpt"] == "receiver says 500"
    assert (
        attempts[1]["error"].startswith("ReadTimeout") and attempts[1]["response_excerpt"] is None
    )
    assert attempts[2]["error"] is None
    assert {a["url"] for a in attempts} == {shop.url}
    times = [moment(a["attempted_at"]) for a in attempts]
    assert times[1] - times[0] >= timedelta(seconds=27)  # not before its backoff, on the clock
    assert times[2] - times[1] >= timedelta(seconds=54)

    hits = stack.receiver.at(shop.path)
    assert len(hits) == 3
    assert {hit.body for hit in hits} == {hits[0].body}  # the very same bytes every time
    assert {hit.delivery for hit in hits} == {final["id"]}
    assert {hit.signature for hit in hits} == {expected_signature(secret, hits[0].body)}
    assert hits[0].json == final["body"]
    assert hits[0].json["data"]["order_id"] == order["id"]


async def read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    """One HTTP/1.1 request off a raw socket: (headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
    return headers, await reader.readexactly(int(headers["content-length"]))


async def test_dropped_connections_and_errors_back_off_and_resend_the_same_request(
    db: Database,
):
    """The sender driven by hand (`drain_once`) with a controlled clock: the receiver first
    hangs up without answering, then answers 503, then 200."""
    key, _ = await apikeys.create_key(db, "shop")
    assert key.id is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook/shop"
    listening = await deliveries.set_url(db, key.id, url, rules=LOOPBACK)
    assert listening.webhook_secret is not None
    draft = OrderDraft(
        external_ref="H-1",
        customer_name="Carla",
        address="Hauptstr. 5, Berlin",
        windows=(lifecycle.Window(DAY.replace(hour=9), DAY.replace(hour=12)),),
    )
    order_id, created = await apikeys.create_order(db, key, draft)
    assert created

    clock = Clock()
    raw: list[tuple[dict[str, str], bytes]] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.append(await read_request(reader))
        writer.close()
        await writer.wait_closed()

    async def after_try(n: int) -> tuple[Delivery, WebhookAttempt]:
        [row] = await rows(db)
        async with db.reads() as session:
            statement = select(WebhookAttempt).order_by(col(WebhookAttempt.id))
            attempts = list(await session.exec(statement))
        assert row.attempts == len(attempts) == n
        return row, attempts[-1]

    sender = WebhookSender(db, WebhooksSettings(timeout_s=5, allow_private=True), clock=clock)
    try:
        server = await asyncio.start_server(hang_up, "127.0.0.1", port)
        async with server:
            assert await sender.drain_once() is True
        row, attempt = await after_try(1)
        assert row.status is OutboxStatus.PENDING
        assert attempt.status_code is None and attempt.error is not None
        assert attempt.error.startswith("RemoteProtocolError")
        wait = row.next_attempt_at - attempt.attempted_at
        assert timedelta(seconds=27) <= wait <= timedelta(seconds=33)
        assert await sender.drain_once() is False  # not due yet

        receiver = Receiver()
        receiver.script = [503]
        async with serve(receiver.app, port=port):
            clock.advance(seconds=34)
            assert await sender.drain_once() is True
            row, attempt = await after_try(2)
            assert (row.status, attempt.status_code) == (OutboxStatus.PENDING, 503)
            wait = row.next_attempt_at - attempt.attempted_at
            assert timedelta(seconds=54) <= wait <= timedelta(seconds=66)  # doubled
            assert await sender.drain_once() is False
            clock.advance(seconds=67)
            assert await sender.drain_once() is True
        row, attempt = await after_try(3)
        assert (row.status, attempt.status_code, row.delivered_at) == (
            OutboxStatus.SENT,
            200,
            attempt.attempted_at,
        )
    finally:
        await sender.stop()

    [(headers, body)] = raw
    assert [hit.body for hit in receiver.hits] == [body, body]
    assert body == row.body.encode()
    for hit in receiver.hits:
        assert hit.headers["lastmile-delivery"] == headers["lastmile-delivery"] == str(row.id)
        assert hit.signature == headers["lastmile-signature"]
    assert headers["lastmile-signature"] == expected_signature(listening.webhook_secret, body)
    assert json.loads(body)["data"]["order_id"] == order_id


async def test_a_receiver_down_past_retry_until_goes_dead_and_redeliver_sends_it(
    db: Database, tmp_path: Path
):
    port = free_port()  # nothing listens here until the receiver comes back
    async with running(db, tmp_path, retry_hours=2) as stack:
        shop = await stack.merchant("shop", url=f"http://127.0.0.1:{port}/hook/shop")
        secret = (await shop.listen())["secret"]
        await shop.order("D-1")

        def state(status: str, tries: int) -> Callable[[list[dict[str, Any]]], bool]:
            return lambda log: (
                len(log) == 1 and log[0]["status"] == status and log[0]["attempts"] == tries
            )

        [entry] = await shop.log_when("the first try", state("pending", 1))
        assert entry["last_status_code"] is None
        assert entry["last_error"].startswith("ConnectError")
        span = moment(entry["retry_until"]) - moment(entry["created_at"])
        assert span == timedelta(hours=2)  # WEBHOOKS_RETRY_HOURS

        stack.clock.advance(hours=3)
        [entry] = await shop.log_when("the delivery to give up", state("dead", 2))
        assert entry["next_attempt_at"] is None and entry["delivered_at"] is None
        assert [a["status_code"] for a in entry["attempt_log"]] == [None, None]
        delivery_id = entry["id"]

        # still down: redeliver makes one more try, and the delivery gives up again
        again = await shop.api.post(f"/webhook/deliveries/{delivery_id}/redeliver")
        assert again.status_code == 202, again.text
        assert again.json()["id"] == delivery_id and again.json()["next_attempt_at"] is not None
        assert again.json()["status"] in ("pending", "sending", "dead")
        await shop.log_when("the redelivery to fail", state("dead", 3))

        async with serve(stack.receiver.app, port=port):
            again = await shop.api.post(f"/webhook/deliveries/{delivery_id}/redeliver")
            assert again.status_code == 202, again.text
            [entry] = await shop.log_when("the redelivery to arrive", state("sent", 4))
        assert [a["status_code"] for a in entry["attempt_log"]] == [None, None, None, 200]
        [hit] = stack.receiver.hits
        check_signed(hit, secret)
        assert hit.delivery == delivery_id and hit.json == entry["body"]


# --- who hears of what --------------------------------------------------------------------------


async def test_only_the_key_that_made_the_order_hears_of_it_unless_all_orders(stack: Stack):
    shop = await stack.merchant("shop")  # listens to its own orders
    watcher = await stack.merchant("watcher")  # listens to every order
    quiet = await stack.merchant("quiet")  # listens; makes one order in a batch
    silent = await stack.merchant("silent")  # no webhook
    await shop.listen()
    assert (await watcher.listen(all_orders=True))["all_orders"] is True
    await quiet.listen()
    assert {shop.secret, watcher.secret, quiet.secret}.isdisjoint({None})
    assert len({shop.secret, watcher.secret, quiet.secret}) == 3

    mine = (await shop.order("K-1"))["id"]
    other = (await silent.order("K-2"))["id"]
    chat = (await new_order(stack.db, ref="K-3")).id  # made in chat or the CLI: no API key
    batch = await quiet.api.post(
        "/orders/batch", json={"orders": [{**ORDER, "external_ref": "K-4"}]}
    )
    assert batch.status_code == 200 and batch.json()["created"] == 1, batch.text
    batched = batch.json()["items"][0]["order"]["id"]
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    for order_id in (mine, chat):
        await move(stack.db, order_id, S.ASSIGNED, driver.id)

    expected = {
        shop: [mine, mine],
        watcher: [mine, mine, other, chat, chat, batched],
        quiet: [batched],
        silent: [],
    }
    for merchant, orders in expected.items():
        got = [row.order_id for row in await rows(stack.db, Delivery.api_key_id == merchant.key.id)]
        assert sorted(got) == sorted(orders), merchant.key.name
        await stack.hits(merchant.path, len(orders))
    await shop.log_when("shop's deliveries sent", sent(2))
    await watcher.log_when("watcher's deliveries sent", sent(6))
    await quiet.log_when("quiet's deliveries sent", sent(1))
    assert await silent.log() == []
    assert len(stack.receiver.hits) == 9

    for merchant, orders in expected.items():
        hits = stack.receiver.at(merchant.path)
        assert sorted(hit.json["data"]["order_id"] for hit in hits) == sorted(orders)
        log_ids = {entry["id"] for entry in await merchant.log()}
        assert {hit.delivery for hit in hits} == log_ids
        for hit in hits:
            assert merchant.secret is not None
            check_signed(hit, merchant.secret)
            for stranger in {shop, watcher, quiet} - {merchant}:
                assert stranger.secret is not None
                assert not deliveries.verify(stranger.secret, hit.body, hit.signature)
    # one key cannot filter the log to another key's order and see its deliveries
    assert await quiet.log(order_id=mine) == []

    # all_orders off again: the chat order's next change reaches nobody
    assert (await watcher.listen())["all_orders"] is False
    before = await count(stack.db, Delivery)
    await move(stack.db, chat, S.OUT_FOR_DELIVERY)
    assert await count(stack.db, Delivery) == before
    await move(stack.db, mine, S.OUT_FOR_DELIVERY)
    assert await count(stack.db, Delivery) == before + 1  # only shop's


async def test_switching_the_webhook_off_skips_what_waits(stack: Stack):
    shop = await stack.merchant("shop")
    secret = (await shop.listen())["secret"]
    stack.receiver.default = 500
    order_id = (await shop.order("O-1"))["id"]
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    await move(stack.db, order_id, S.ASSIGNED, driver.id)
    await shop.log_when(
        "both deliveries tried and waiting",
        lambda log: (
            len(log) == 2 and all((e["status"], e["attempts"]) == ("pending", 1) for e in log)
        ),
    )
    tried = len(stack.receiver.hits)
    assert tried == 2

    off = await shop.api.delete("/webhook")
    assert off.status_code == 204 and off.content == b""
    shown = (await shop.api.get("/webhook")).json()
    assert (shown["url"], shown["all_orders"], shown["secret"]) == (None, False, secret)
    log = await shop.log()
    assert [e["status"] for e in log] == ["skipped", "skipped"]
    assert {e["last_error"] for e in log} == {"the webhook was switched off"}
    assert {e["next_attempt_at"] for e in log} == {None}

    await move(stack.db, order_id, S.OUT_FOR_DELIVERY)
    assert await count(stack.db, Delivery) == 2  # a change while off makes no delivery
    stack.receiver.default = 200
    stack.clock.advance(hours=2)
    assert await stack.nothing_due()
    assert len(stack.receiver.hits) == tried

    # on again: the same secret, only later changes are sent, the skipped ones stay skipped
    assert (await shop.listen())["secret"] == secret
    await move(stack.db, order_id, S.ARRIVED)
    [hit] = (await stack.hits(shop.path, tried + 1))[tried:]
    assert hit.json["data"]["status"] == "arrived"
    check_signed(hit, secret)
    log = await shop.log_when("the new one sent", lambda log: log[0]["status"] == "sent")
    assert [e["status"] for e in log] == ["sent", "skipped", "skipped"]


async def test_a_revoked_key_gets_nothing_more(stack: Stack):
    shop = await stack.merchant("shop")
    await shop.listen()
    stack.receiver.default = 500
    order_id = (await shop.order("V-1"))["id"]
    await shop.log_when(
        "the first try",
        lambda log: len(log) == 1 and (log[0]["status"], log[0]["attempts"]) == ("pending", 1),
    )
    assert len(stack.receiver.hits) == 1

    await apikeys.revoke(stack.db, shop.key.prefix)
    assert (await shop.api.get("/webhook")).status_code == 401
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    await move(stack.db, order_id, S.ASSIGNED, driver.id)
    assert await count(stack.db, Delivery) == 1  # nothing new for a revoked key

    stack.receiver.default = 200
    stack.clock.advance(hours=1)

    async def skipped() -> Delivery | None:
        [row] = await rows(stack.db)
        return row if row.status is OutboxStatus.SKIPPED else None

    row = await until("the waiting delivery to be skipped", skipped)
    assert row.last_error == "the API key was revoked or its webhook switched off"
    assert row.attempts == 1
    assert len(stack.receiver.hits) == 1


async def test_a_new_secret_signs_what_is_sent_after_it(stack: Stack):
    shop = await stack.merchant("shop")
    old = (await shop.listen())["secret"]
    stack.receiver.script = [200, 500]
    order_id = (await shop.order("N-1"))["id"]
    await stack.hits(shop.path, 1)
    driver = await add_driver(stack.db, "Dana Berg", 5001)
    await move(stack.db, order_id, S.ASSIGNED, driver.id)
    await shop.log_when(
        "the assignment to wait for a retry",
        lambda log: len(log) == 2 and log[0]["status"] == "pending" and log[0]["attempts"] == 1,
    )

    rotated = await shop.api.post("/webhook/secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", new)
    assert rotated.json()["url"] == shop.url
    assert (await shop.api.get("/webhook")).json()["secret"] == new

    stack.clock.advance(minutes=5)  # the waiting retry goes out, signed with the new secret
    await move(stack.db, order_id, S.OUT_FOR_DELIVERY)
    await shop.log_when("all sent", sent(3))
    hits = sorted(stack.receiver.at(shop.path), key=lambda hit: hit.delivery)  # stable
    assert len(hits) == 4
    created, assigned_500, assigned_retry, out = hits
    assert assigned_500.body == assigned_retry.body
    assert assigned_500.delivery == assigned_retry.delivery
    for hit in (created, assigned_500):
        check_signed(hit, old)
        assert not deliveries.verify(new, hit.body, hit.signature)
    for hit in (assigned_retry, out):
        check_signed(hit, new)
        assert not deliveries.verify(old, hit.body, hit.signature)
    assert out.json["data"]["status"] == "out_for_delivery"
