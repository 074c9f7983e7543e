"""The WhatsApp outbox sender against the fake Graph API: the 24-hour window and templates,
throttling, permanent errors, statuses (early, repeated, out of order), restarts mid-send."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.whatsapp.sender import apply_status
from core.db import Database
from core.models import Channel, Customer, Member, OutboxStatus, Role
from core.notify import receipts
from core.people import identities
from core.people.identities import ChatRef
from tests.factories import add_member, new_order
from tests.fakes.graph_api import FakeGraph
from tests.whatsapp_harness import (
    make_sender,
    notify,
    rows,
    running,
    sent_messages,
    status_receiver,
    until,
    whatsapp_member,
)

HOUR = timedelta(hours=1)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
SLOT = ({"action": "customer.pick_new_slot", "order_id": 7},)


async def all_sent(db: Database, count: int) -> bool:
    return sum(r.status is OutboxStatus.SENT for r in await rows(db)) == count


async def test_inside_the_window_free_form_and_statuses_are_recorded(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491701234567", wrote_ago=HOUR)
    await notify(db, kim, "a", actions=SLOT)
    await notify(db, kim, "b")
    async with FakeGraph() as fake, status_receiver(db, fake) as applied:
        fake.wrote("491701234567")
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 2), "both sent")

            async def delivered() -> bool:
                return [r.delivery_status for r in await rows(db)] == ["delivered"] * 2

            await until(delivered, "both delivered")
        sent = fake.sent_to("491701234567")
    assert [s.type for s in sent] == ["interactive", "text"]  # in order, free-form
    assert sent[0].body["interactive"]["type"] == "button"
    assert len(applied) == 4  # (False: a status that came before its send was recorded)
    wamids = {m.external_id for m in await sent_messages(db)}
    assert wamids == {s.wamid for s in sent}


async def test_outside_the_window_a_notice_goes_as_its_template(db: Database, tmp_path: Path):
    late = await whatsapp_member(db, "491700000001", "Lu", wrote_ago=25 * HOUR, language="de")
    never = await whatsapp_member(db, "491700000002", "Max", wrote_ago=None)
    picked = "customer.order_picked_up"
    await notify(db, late, "late", picked, params={"order_id": 12, "ref": "#12"})
    await notify(db, never, "never", picked, params={"order_id": 13, "ref": "#13"})
    templates = {
        "*": {"name": "lastmile_update", "languages": ["en"], "params": ["text"]},
        "customer.order_picked_up": {
            "name": "lastmile_location",
            "languages": ["en", "de"],
            "params": ["order_id", "text"],
        },
    }
    async with FakeGraph() as fake:
        fake.approve("lastmile_location", "de", 2)
        fake.approve("lastmile_location", "en", 2)
        async with running(make_sender(fake, db, tmp_path, templates=templates)):
            await until(lambda: all_sent(db, 2), "both sent")
        lu, max_ = fake.sent_to("491700000001"), fake.sent_to("491700000002")
    assert [s.type for s in lu + max_] == ["template", "template"]
    assert lu[0].body["template"]["language"] == {"code": "de"}
    params = lu[0].body["template"]["components"][0]["parameters"]
    assert params[0]["text"] == "12" and "\n" not in params[1]["text"] and params[1]["text"]
    assert max_[0].body["template"]["language"] == {"code": "en"}


async def test_a_failed_131047_status_resends_the_row_as_its_template_once(
    db: Database, tmp_path: Path
):
    # our database thinks Kim wrote an hour ago; Meta knows better (her window is closed)
    kim = await whatsapp_member(db, "491701111111", wrote_ago=HOUR)
    await notify(db, kim, "a", actions=SLOT)
    async with FakeGraph() as fake, status_receiver(db, fake):
        fake.approve("lastmile_update", "en", 1)
        async with running(make_sender(fake, db, tmp_path)):

            async def template_sent() -> bool:
                [row] = await rows(db)
                return row.as_template and row.status is OutboxStatus.SENT

            await until(template_sent, "the template sent")
            await fake.settle()
            await asyncio.sleep(0.5)  # a second switch would show by now
        sent = fake.sent_to("491701111111")
    assert [s.type for s in sent] == ["interactive", "template"]
    [row] = await rows(db)
    assert row.delivery_status == "delivered" and row.parts_sent == 1
    first = sent[0].wamid
    assert first is not None
    # the same failure told again (Meta repeats webhooks) switches nothing again
    at = datetime.now(UTC)
    assert await apply_status(db, first, "failed", at, 131047, "Re-engagement message")
    [again] = await rows(db)
    assert again.status is OutboxStatus.SENT and again.as_template


async def test_a_131047_answered_at_once_switches_to_the_template(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491702222222", wrote_ago=HOUR)
    await notify(db, kim, "a")
    async with FakeGraph() as fake:
        fake.approve("lastmile_update", "en", 1)
        fake.fail_next(131047)
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        sent = fake.sent_to("491702222222")
    assert [s.type for s in sent] == ["template"]
    [row] = await rows(db)
    assert row.attempts == 1 and row.as_template  # the refused try is not counted


async def test_throttling_backs_off_and_loses_or_repeats_nothing(db: Database, tmp_path: Path):
    people = [
        await whatsapp_member(db, f"4917030000{i:02}", f"P{i}", wrote_ago=HOUR) for i in range(6)
    ]
    for round_ in range(4):
        for person in people:
            await notify(db, person, f"{person.id}:{round_}")
    async with FakeGraph() as fake:
        for person in people:
            fake.wrote(f"4917030000{people.index(person):02}")
        fake.rate_limit(per_second=10)
        fake.fail_next(130429, times=3, retry_after=1)
        async with running(make_sender(fake, db, tmp_path, rate_per_s=40, chat_rate_per_s=10)):
            await until(lambda: all_sent(db, 24), "all 24 sent")
        refused = [s for s in fake.sent if s.error in (130429,)]
        delivered = Counter(s.to for s in fake.sent if s.ok)
        arrivals = [s.at for s in fake.sent]
    assert len(refused) >= 3
    first = refused[0].at  # after a throttle everything waits retry_after (1 s), bar in flight
    assert not [at for at in arrivals if first + 0.1 < at < first + 0.9]
    assert delivered == {f"4917030000{i:02}": 4 for i in range(6)}
    assert max(r.attempts for r in await rows(db)) == 1  # waiting is not a failed attempt
    assert len(await sent_messages(db)) == 24


async def test_permanent_errors_fail_the_row_and_others_go_on(db: Database, tmp_path: Path):
    blocked = await whatsapp_member(db, "491704444444", "Ana", wrote_ago=HOUR)
    fine = await whatsapp_member(db, "491705555555", "Bo", wrote_ago=HOUR)
    await notify(db, blocked, "a")
    await notify(db, fine, "b")
    await notify(db, fine, "c")
    async with FakeGraph() as fake:
        fake.wrote("491704444444")
        fake.wrote("491705555555")
        fake.not_allowed("491704444444")
        fake.fail_next(131000, status=500, retry_after=0.3, to="491705555555")  # 5xx: retried

        async def settled() -> bool:
            return {r.status for r in await rows(db)} <= {OutboxStatus.SENT, OutboxStatus.DEAD}

        async with running(make_sender(fake, db, tmp_path)):
            await until(settled, "all settled")
        sent = Counter(s.to for s in fake.sent if s.ok)
    ana, bo1, bo2 = await rows(db)
    assert ana.status is OutboxStatus.DEAD and "131030" in (ana.last_error or "")
    assert ana.attempts == 1  # not tried again
    assert (bo1.status, bo2.status) == (OutboxStatus.SENT, OutboxStatus.SENT)
    assert bo1.attempts == 2  # the 5xx was tried again
    assert sent == {"491705555555": 2}


async def test_a_status_before_the_sends_answer_is_applied(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491706666666", wrote_ago=HOUR)
    await notify(db, kim, "a")
    async with FakeGraph() as fake, status_receiver(db, fake) as applied:
        fake.wrote("491706666666")
        fake.status_first = True
        fake.auto_statuses = ("sent",)
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        await fake.settle()
    assert applied == [False]  # the status came before the send was recorded …
    [row] = await rows(db)
    assert row.delivery_status == "sent"  # … and was applied when it was
    [message] = await sent_messages(db)
    assert message.outbox_id == row.id and message.sent_at is not None


async def test_a_failed_131047_before_the_sends_answer_switches_to_the_template(
    db: Database, tmp_path: Path
):
    kim = await whatsapp_member(db, "491707777777", wrote_ago=HOUR)  # Meta: closed
    await notify(db, kim, "a")
    async with FakeGraph() as fake, status_receiver(db, fake):
        fake.approve("lastmile_update", "en", 1)
        fake.status_first = True
        async with running(make_sender(fake, db, tmp_path)):

            async def template_sent() -> bool:
                [row] = await rows(db)
                return row.as_template and row.status is OutboxStatus.SENT

            await until(template_sent, "the template sent")
        sent = fake.sent_to("491707777777")
    assert [s.type for s in sent] == ["text", "template"]


async def test_statuses_repeated_and_out_of_order(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491708888888", wrote_ago=HOUR)
    await notify(db, kim, "a")
    async with FakeGraph() as fake:
        fake.wrote("491708888888")
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        [sent] = fake.sent_to("491708888888")
    wamid = sent.wamid
    assert wamid is not None
    t0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert await apply_status(db, wamid, "read", t0 + timedelta(seconds=30))
    assert await apply_status(db, wamid, "delivered", t0 + timedelta(seconds=10))  # late
    assert await apply_status(db, wamid, "sent", t0)
    assert await apply_status(db, wamid, "read", t0 + timedelta(seconds=99))  # a repeat
    assert not await apply_status(db, "wamid.unknown", "read", t0)
    assert await apply_status(db, wamid, "played", t0)  # not a receipt we keep: ignored
    [row] = await rows(db)
    assert row.delivery_status == "read" and row.delivery_at == t0 + timedelta(seconds=30)
    message = next(m for m in await sent_messages(db) if m.external_id == wamid)
    assert (message.status, message.read_at) == ("read", t0 + timedelta(seconds=30))
    assert message.delivered_at == t0 + timedelta(seconds=10) and message.sent_at == t0


async def stalled(fake: FakeGraph) -> bool:
    return fake.stalled > 0


async def test_a_restart_mid_send_sends_only_the_rest(db: Database, tmp_path: Path):
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "day.png").write_bytes(PNG)
    kim = await whatsapp_member(db, "491709999999", wrote_ago=HOUR)
    await notify(db, kim, "a", params={"photo_path": "charts/day.png"}, actions=SLOT)
    await notify(db, kim, "b")
    async with FakeGraph() as fake:
        fake.wrote("491709999999")
        fake.stall_next("interactive")
        first = make_sender(fake, db, tmp_path, lease_s=2)
        task = asyncio.create_task(first.run())

        async def image_sent() -> bool:
            return len(fake.sent_to("491709999999")) == 1

        await until(image_sent, "the image sent")
        await until(lambda: stalled(fake), "the buttons' send waiting for its answer")
        task.cancel()  # the process dies mid-send
        await asyncio.gather(task, return_exceptions=True)
        await first.client.aclose()
        [row, _] = await rows(db)
        assert row.status is OutboxStatus.SENDING and row.parts_sent == 1
        async with running(make_sender(fake, db, tmp_path, lease_s=2)):  # after the lease
            await until(lambda: all_sent(db, 2), "both sent")
        async with running(make_sender(fake, db, tmp_path)):  # a third start: nothing more
            await asyncio.sleep(0.5)
        sent = fake.sent_to("491709999999")
    assert [s.type for s in sent] == ["image", "interactive", "text"]
    assert len(await sent_messages(db)) == 3


async def test_one_persons_messages_are_paced(db: Database, tmp_path: Path):
    kim: Member = await whatsapp_member(db, "491701010101", wrote_ago=HOUR)
    for i in range(4):
        await notify(db, kim, f"m{i}")
    async with FakeGraph() as fake:
        fake.wrote("491701010101")
        async with running(make_sender(fake, db, tmp_path, chat_rate_per_s=2)):
            await until(lambda: all_sent(db, 4), "all sent")
        times = [s.at for s in fake.sent_to("491701010101")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4 and min(gaps) >= 0.45  # 2 a second: 0.5 s apart (timer slack)


async def test_a_number_on_the_member_record_gets_the_template(db: Database, tmp_path: Path):
    member = await add_member(db, "Ola", [Role.CUSTOMER], whatsapp_phone="+49 170 1212121")
    await notify(db, member, "a")
    async with FakeGraph() as fake:
        fake.approve("lastmile_update", "en", 1)
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        [sent] = fake.sent_to("491701212121")  # she never wrote: no window
    assert sent.type == "template"


async def test_the_default_template_of_a_confirmation_has_the_tracking_link(
    db: Database, tmp_path: Path
):
    lena = await whatsapp_member(db, "491703434343", "Lena", wrote_ago=None)
    async with db.transaction() as session:
        session.add(Customer(name="Lena", phone="+491703434343", member_id=lena.id))
    order = await new_order(db, phone="+491703434343")
    async with FakeGraph() as fake:
        fake.approve("lastmile_order_confirmed", "en", 2)
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        [sent] = fake.sent_to("491703434343")
    template = sent.body["template"]
    assert template["name"] == "lastmile_order_confirmed"
    first, link = template["components"][0]["parameters"]
    assert first["text"] == str(order.id)
    assert link["text"].endswith(f"/t/{order.tracking_token}")


async def test_two_senders_on_one_database_send_each_notice_once(db: Database, tmp_path: Path):
    people = [
        await whatsapp_member(db, f"4917050000{i:02}", f"Q{i}", wrote_ago=HOUR) for i in range(8)
    ]
    for round_ in range(5):
        for person in people:
            await notify(db, person, f"{person.id}:{round_}")
    async with FakeGraph() as fake:
        for i in range(8):
            fake.wrote(f"4917050000{i:02}")
        one = make_sender(fake, db, tmp_path, chat_rate_per_s=20)
        two = make_sender(fake, db, tmp_path, chat_rate_per_s=20)
        async with running(one), running(two):
            await until(lambda: all_sent(db, 40), "all 40 sent")
        accepted = [s for s in fake.sent if s.ok]
    assert len(accepted) == 40 and one.sent + two.sent == 40
    per_person = Counter(s.to for s in accepted)
    assert per_person == {f"4917050000{i:02}": 5 for i in range(8)}


async def test_receipts_of_messages_no_row_sent_are_forgotten_later(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491706060606", wrote_ago=HOUR)
    await notify(db, kim, "a")
    async with FakeGraph() as fake:
        fake.wrote("491706060606")
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        [sent] = fake.sent_to("491706060606")
    now = db.now()
    assert not await apply_status(db, "wamid.a-direct-reply", "delivered", now)
    assert await receipts.prune(db, Channel.WHATSAPP, now - timedelta(days=2)) == 0  # too new
    assert await receipts.prune(db, Channel.WHATSAPP, now + timedelta(minutes=1)) == 1
    assert [m.external_id for m in await sent_messages(db)] == [sent.wamid]  # the row's stays


async def dispatcher_alerts(db: Database) -> list[dict]:
    return [r.params for r in await rows(db) if r.template == "dispatcher.chat_unreachable"]


async def test_an_undeliverable_number_stops_her_chat_and_tells_dispatchers_once(
    db: Database, tmp_path: Path
):
    await add_member(db, "Boss", [Role.DISPATCHER], telegram_chat_id=9001)
    ana = await whatsapp_member(db, "491707070707", "Ana", wrote_ago=HOUR)
    await notify(db, ana, "a")
    async with FakeGraph() as fake:
        fake.wrote("491707070707")
        fake.fail_next(131026, to="491707070707")
        async with running(make_sender(fake, db, tmp_path)):

            async def dead() -> bool:
                return (await rows(db))[0].status is OutboxStatus.DEAD

            await until(dead, "her message given up")
    [alert] = await dispatcher_alerts(db)
    assert alert["name"] == "Ana" and alert["channel"] == "WhatsApp"
    await notify(db, ana, "b")  # her chat is not used any more
    assert (await rows(db))[-1].status is OutboxStatus.SKIPPED
    await identities.wrote(db, ChatRef(Channel.WHATSAPP, "491707070707", "491707070707"), db.now())
    await notify(db, ana, "c")  # she wrote again: reachable
    assert (await rows(db))[-1].channel is Channel.WHATSAPP
    assert (await rows(db))[-1].status is OutboxStatus.PENDING


async def test_a_failed_status_131026_tells_dispatchers_once(db: Database, tmp_path: Path):
    await add_member(db, "Boss", [Role.DISPATCHER], telegram_chat_id=9002)
    ana = await whatsapp_member(db, "491708080808", "Ana", wrote_ago=HOUR)
    await notify(db, ana, "a")
    async with FakeGraph() as fake:
        fake.wrote("491708080808")
        async with running(make_sender(fake, db, tmp_path)):
            await until(lambda: all_sent(db, 1), "sent")
        [sent] = fake.sent_to("491708080808")
    assert sent.wamid is not None
    for _ in range(2):  # Meta repeats webhooks
        assert await apply_status(
            db, sent.wamid, "failed", db.now(), 131026, "Message Undeliverable"
        )
    assert len(await dispatcher_alerts(db)) == 1
    assert (await rows(db))[0].delivery_status == "failed"
