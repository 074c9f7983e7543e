"""Status webhooks end to end: the real app's WhatsApp channel sends the outbox through the fake
Graph API, which posts signed statuses back to the real /webhooks/whatsapp route; they are
recorded on the outbox row, and a failed 131047 sends the row again as its template."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.db import Database
from core.models import OutboxStatus
from tests.test_whatsapp_webhook import until, whatsapp_site
from tests.whatsapp_harness import notify, rows, sent_messages, whatsapp_member

HOUR = timedelta(hours=1)
SLOT = ({"action": "customer.pick_new_slot", "order_id": 7},)


async def test_statuses_through_the_webhook_are_recorded_on_the_row(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491701234567", wrote_ago=HOUR)
    async with whatsapp_site(db, tmp_path) as (_, fake, _app):
        fake.wrote("491701234567")
        fake.auto_statuses = ("sent", "delivered", "read")
        fake.status_first = True  # "sent" comes before the send's own answer
        await notify(db, kim, "a", actions=SLOT)

        async def read() -> bool:
            return [r.delivery_status for r in await rows(db)] == ["read"]

        await until(read, 20)
        await fake.settle()
    assert [code for _, code in fake.webhooks] == [200, 200, 200]
    [row] = await rows(db)
    assert row.status is OutboxStatus.SENT
    [message] = await sent_messages(db)
    assert message.outbox_id == row.id and message.status == "read"
    assert message.sent_at and message.delivered_at and message.read_at


async def test_a_failed_131047_through_the_webhook_sends_the_template(db: Database, tmp_path: Path):
    kim = await whatsapp_member(db, "491707654321", wrote_ago=HOUR)  # Meta: her window closed
    async with whatsapp_site(db, tmp_path) as (_, fake, _app):
        fake.approve("lastmile_update", "en", 1)
        fake.auto_statuses = ("sent", "delivered")
        await notify(db, kim, "a")

        async def delivered_template() -> bool:
            [row] = await rows(db)
            return row.as_template and row.delivery_status == "delivered"

        await until(delivered_template, 20)
        sent = fake.sent_to("491707654321")
    assert [s.type for s in sent] == ["text", "template"]
    assert sent[1].body["template"]["components"][0]["parameters"][0]["text"]
