"""The transactional outbox: atomic with the change, leased to senders, retried, never doubled."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import leases
from core.clock import system_clock
from core.db import Database, is_sqlite
from core.errors import DomainError
from core.models import (
    Channel,
    Customer,
    Order,
    OrderEvent,
    OrderStatus,
    OutboxMessage,
    OutboxStatus,
    Role,
)
from core.notify import outbox, rules
from core.notify.rules import Notice
from core.orders import service as orders
from core.orders.lifecycle import Actor
from tests.factories import S, add_driver, add_member, count, link_customer, move, new_order


class Injected(RuntimeError):
    pass


async def test_failure_before_commit_leaves_no_trace(db: Database, monkeypatch):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    before = (
        await count(db, OrderEvent),
        await count(db, OutboxMessage),
    )
    real_enqueue = outbox.enqueue
    seen_inside: list[OrderStatus] = []

    async def enqueue_then_fail(session, event, notices):
        await real_enqueue(session, event, notices)  # state, event and outbox rows are flushed
        seen_inside.append((await session.get(Order, event.order_id)).status)
        raise Injected("crash before commit")

    monkeypatch.setattr(outbox, "enqueue", enqueue_then_fail)
    with pytest.raises(Injected):
        await move(db, order.id, S.ASSIGNED, driver.id)
    assert seen_inside == [S.ASSIGNED]  # the failure came after the state write
    async with db.sessions() as session:
        saved = await session.get(Order, order.id)
        assert (saved.status, saved.driver_id) == (S.NEW, None)
    assert (await count(db, OrderEvent), await count(db, OutboxMessage)) == before


async def test_failed_creation_saves_nothing(db: Database, monkeypatch):
    async def broken_rules(*args, **kwargs):
        raise Injected("rules crashed")

    monkeypatch.setattr(rules, "for_event", broken_rules)
    with pytest.raises(Injected):
        await new_order(db, ref="A-1", phone="+4915112345678")
    for model in (Order, Customer, OrderEvent, OutboxMessage):
        assert await count(db, model) == 0, model


async def test_rows_go_to_the_recipients_channel(db: Database):
    dispatcher = await add_member(db, "Disp", [Role.DISPATCHER], telegram_chat_id=900)
    whatsapp = await add_member(db, "Wa", [Role.CUSTOMER], whatsapp_phone="+4915112345678")
    silent = await add_member(db, "NoChat", [Role.CUSTOMER])
    driver = await add_driver(db, "Dana", 101)
    orders_by_member = {}
    for member in (whatsapp, silent):
        order = await new_order(db)
        await link_customer(db, order.customer_id, member)
        orders_by_member[member.id] = order
        for step in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED):
            await move(db, order.id, step, driver.id)
    async with db.sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    by = {(r.recipient_member_id, r.template, r.order_id): r for r in rows}
    wa_fail = by[(whatsapp.id, "customer.order_failed", orders_by_member[whatsapp.id].id)]
    assert (wa_fail.channel, wa_fail.status) == (Channel.WHATSAPP, OutboxStatus.PENDING)
    assert wa_fail.actions == [
        {"action": "customer.pick_new_slot", "order_id": wa_fail.order_id},
        {"action": "customer.leave_instructions", "order_id": wa_fail.order_id},
    ]
    assert wa_fail.params["reason"] == "nobody home"
    quiet = by[(silent.id, "customer.order_failed", orders_by_member[silent.id].id)]
    assert (quiet.channel, quiet.status) == (None, OutboxStatus.SKIPPED)
    alert = by[(dispatcher.id, "dispatcher.order_failed", wa_fail.order_id)]
    assert alert.channel is Channel.TELEGRAM and 1 <= len(alert.actions) <= 3


async def test_the_actor_is_not_told_about_their_own_change(db: Database):
    driver = await add_driver(db, "Dana", 101)
    order = await new_order(db)
    await move(db, order.id, S.ASSIGNED, driver.id)
    await move(db, order.id, S.OUT_FOR_DELIVERY)
    await orders.change_status(db, order.id, S.CANCELLED, Actor.member(driver.member_id))
    templates = [r.template for r in (await _rows(db)) if r.recipient_member_id == driver.member_id]
    assert templates == ["driver.order_assigned"]


async def test_more_than_three_actions_are_refused(db: Database, monkeypatch):
    member = await add_member(db, "Disp", [Role.DISPATCHER], telegram_chat_id=900)
    order = await new_order(db)

    async def chatty(session, order, event, previous_driver_id):
        actions = tuple({"action": f"a{i}", "order_id": order.id} for i in range(4))
        return [Notice(member.id, "dispatcher.order_failed", {}, actions)]

    monkeypatch.setattr(rules, "for_event", chatty)
    with pytest.raises(DomainError, match="at most 3 buttons"):
        await move(db, order.id, S.CANCELLED)
    assert (await _order(db, order.id)).status is S.NEW


async def test_idempotency_keys_are_unique(db: Database):
    member = await add_member(db, "Disp", [Role.DISPATCHER], telegram_chat_id=900)
    order = await new_order(db)
    async with db.sessions() as session:
        event = (await session.exec(select(OrderEvent))).one()
    notice = Notice(member.id, "dispatcher.order_failed")
    async with db.transaction() as session:
        await outbox.enqueue(session, event, [notice])
    async with db.transaction() as session:  # the same notice again is a no-op
        await outbox.enqueue(session, event, [notice])
    assert await count(db, OutboxMessage, OutboxMessage.order_id == order.id) == 1
    with pytest.raises(IntegrityError):  # and the database refuses a second row outright
        async with db.transaction() as session:
            key = outbox.idempotency_key(event, notice)
            session.add(
                OutboxMessage(recipient_member_id=member.id, template="x", idempotency_key=key)
            )
    assert await count(db, OutboxMessage, OutboxMessage.order_id == order.id) == 1


async def test_claim_leases_retries_and_gives_up(db: Database):
    telegram = await add_member(db, "Tg", [Role.CUSTOMER], telegram_chat_id=555)
    whatsapp = await add_member(db, "Wa", [Role.CUSTOMER], whatsapp_phone="+4915112345678")
    for member in (telegram, whatsapp):
        order = await new_order(db)
        await link_customer(db, order.customer_id, member)
        await move(db, order.id, S.CANCELLED)
    now = system_clock() + timedelta(seconds=1)

    claimed = await outbox.claim(db, Channel.TELEGRAM, now=now)
    assert [(m.recipient_member_id, m.template) for m in claimed] == [
        (telegram.id, "customer.order_cancelled")
    ]
    message = claimed[0]
    assert (message.status, message.attempts) == (OutboxStatus.SENDING, 1)
    assert await outbox.claim(db, Channel.TELEGRAM, now=now) == []  # leased
    again = await outbox.claim(db, Channel.TELEGRAM, now=now + outbox.LEASE)  # sender died
    assert [m.id for m in again] == [message.id] and again[0].attempts == 2

    status = await outbox.mark_failed(db, message.id, "HTTP 502", now=now)
    assert status is OutboxStatus.PENDING
    saved = await _message(db, message.id)
    assert saved.last_error == "HTTP 502"
    assert saved.next_attempt_at == now + outbox.backoff(2)
    assert await outbox.claim(db, Channel.TELEGRAM, now=now) == []
    await outbox.mark_failed(db, message.id, "429", retry_after=30, now=now)
    assert (await _message(db, message.id)).next_attempt_at == now + timedelta(seconds=30)

    later = now
    while (await _message(db, message.id)).status is not OutboxStatus.DEAD:
        later += timedelta(hours=2)
        assert [m.id for m in await outbox.claim(db, Channel.TELEGRAM, now=later)] == [message.id]
        await outbox.mark_failed(db, message.id, "still down", now=later)
    assert (await _message(db, message.id)).attempts == outbox.MAX_ATTEMPTS
    assert await outbox.claim(db, Channel.TELEGRAM, now=later + timedelta(days=1)) == []

    wa = await outbox.claim(db, Channel.WHATSAPP, now=now)
    await outbox.mark_sent(db, wa[0].id, now=now)
    saved = await _message(db, wa[0].id)
    assert (saved.status, saved.sent_at) == (OutboxStatus.SENT, now)
    assert await outbox.claim(db, Channel.WHATSAPP, now=now + timedelta(days=1)) == []
    assert await outbox.mark_failed(db, wa[0].id, "late error") is OutboxStatus.SENT


async def test_a_permanent_error_is_not_retried(db: Database):
    member = await add_member(db, "Tg", [Role.CUSTOMER], telegram_chat_id=555)
    order = await new_order(db)
    await link_customer(db, order.customer_id, member)
    await move(db, order.id, S.CANCELLED)
    [message] = await outbox.claim(db, Channel.TELEGRAM)
    status = await outbox.mark_failed(db, message.id, "Forbidden: bot was blocked", permanent=True)
    assert status is OutboxStatus.DEAD


async def test_concurrent_claims_never_share_a_message(db: Database):
    for i in range(12):
        member = await add_member(db, f"Tg{i}", [Role.CUSTOMER], telegram_chat_id=555 + i)
        order = await new_order(db)
        await link_customer(db, order.customer_id, member)
        await move(db, order.id, S.CANCELLED)
    batches = await asyncio.gather(*(outbox.claim(db, Channel.TELEGRAM, limit=5) for _ in range(4)))
    ids = [m.id for batch in batches for m in batch]
    assert len(ids) == len(set(ids)) == 12


async def test_a_recipients_messages_are_claimed_in_order(db: Database):
    member = await add_member(db, "Tg", [Role.CUSTOMER], telegram_chat_id=555)
    for _ in range(3):
        order = await new_order(db)
        await link_customer(db, order.customer_id, member)
        await move(db, order.id, S.CANCELLED)
    first = await outbox.claim(db, Channel.TELEGRAM, limit=1)
    assert len(first) == 1
    assert await outbox.claim(db, Channel.TELEGRAM) == []  # the oldest is being sent
    await outbox.retry_later(db, first[0].id, 30, "Too Many Requests: retry after 30")
    assert await outbox.claim(db, Channel.TELEGRAM) == []  # the younger ones wait behind it
    later = system_clock() + timedelta(seconds=31)
    again = await outbox.claim(db, Channel.TELEGRAM, now=later)
    assert [m.id for m in again] == [first[0].id, first[0].id + 1, first[0].id + 2]


async def _rows(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list((await session.exec(select(OutboxMessage))).all())


async def _message(db: Database, message_id: int) -> OutboxMessage:
    async with db.sessions() as session:
        return await session.get(OutboxMessage, message_id)


async def _order(db: Database, order_id: int) -> Order:
    async with db.sessions() as session:
        return await session.get(Order, order_id)


async def test_two_senders_claiming_at_once_keep_a_recipients_order(db: Database):
    """Sender A has leased Tg's two oldest messages but not committed yet when sender B claims:
    B must not take Tg's third message, or Tg could get it before the first two."""
    if is_sqlite(db.url):
        pytest.skip("SQLite has one writer at a time: claims cannot overlap")
    member = await add_member(db, "Tg", [Role.CUSTOMER], telegram_chat_id=555)
    for _ in range(3):
        order = await new_order(db)
        await link_customer(db, order.customer_id, member)
        await move(db, order.id, S.CANCELLED)
    async with db.transaction() as first:
        held = await outbox.claim_in(first, Channel.TELEGRAM, limit=2)
        assert len(held) == 2
        second = asyncio.create_task(outbox.claim(db, Channel.TELEGRAM))
        await asyncio.sleep(0.2)  # B runs while A is still open
    assert await asyncio.wait_for(second, 10) == []  # the third waits behind the first two
    for message in held:
        await outbox.mark_sent(db, message.id)
    [third] = await outbox.claim(db, Channel.TELEGRAM)
    assert third.id == max(m.id for m in held) + 1


async def _queued(db: Database, count: int) -> list[int]:
    member = await add_member(db, "Tg", [Role.CUSTOMER], telegram_chat_id=555)
    assert member.id is not None
    async with db.transaction() as session:
        rows = [
            await outbox.add(session, Notice(member.id, "driver.share_location_again"), f"k{i}")
            for i in range(count)
        ]
    return [row.id for row in rows if row is not None and row.id is not None]


async def test_a_sender_whose_lease_was_taken_over_neither_sends_nor_records(db: Database):
    first_id, second_id = await _queued(db, 2)
    start = system_clock()
    mine = await outbox.claim(db, Channel.TELEGRAM, now=start)
    token = mine[0].lease_token
    assert [m.id for m in mine] == [first_id, second_id] and token
    late = start + outbox.LEASE + timedelta(seconds=1)  # my lease ran out: another claims
    [taken] = await outbox.claim(db, Channel.TELEGRAM, now=late)
    assert taken.id == first_id and taken.lease_token not in (None, token)

    stale = leases.Leases(db, OutboxMessage, clock=lambda: late)
    assert await stale.hold(first_id, token) is None  # the fence: do not send it
    assert not await outbox.mark_sent(db, first_id, token=token)
    await outbox.mark_failed(db, first_id, "late error", token=token)
    await outbox.retry_later(db, first_id, 30, "429", token=token)
    await outbox.release(db, [first_id, second_id], token=token, now=late)
    first, second = await _message(db, first_id), await _message(db, second_id)
    assert (first.status, first.attempts, first.last_error) == (OutboxStatus.SENDING, 2, None)
    assert first.lease_token == taken.lease_token
    assert (second.status, second.attempts) == (OutboxStatus.PENDING, 0)  # still mine: given back

    loop = asyncio.get_running_loop()
    before = loop.time()
    deadline = await stale.hold(first_id, taken.lease_token)
    assert deadline is not None  # its holder may send it, within half the lease
    assert before < deadline <= loop.time() + outbox.LEASE.total_seconds() / 2
    assert (await _message(db, first_id)).next_attempt_at == late + outbox.LEASE
    assert await outbox.mark_sent(db, first_id, token=taken.lease_token)


async def test_a_batch_keeps_its_leases_while_it_waits(db: Database):
    await _queued(db, 1)
    lease = timedelta(seconds=1)
    keeper = leases.Leases(db, OutboxMessage, lease)
    [row] = await outbox.claim(db, Channel.TELEGRAM, lease=lease)
    assert row.lease_token is not None
    async with keeper.kept(row.lease_token):
        await asyncio.sleep(2.5 * lease.total_seconds())  # a 429's wait, longer than the lease
        assert await outbox.claim(db, Channel.TELEGRAM) == []  # still held: renewed
    await asyncio.sleep(1.2 * lease.total_seconds())  # no longer kept (its sender died)
    [again] = await outbox.claim(db, Channel.TELEGRAM)
    assert again.id == row.id and again.lease_token != row.lease_token
