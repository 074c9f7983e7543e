"""WhatsApp outbound: notifications to many people through the outbox sender and the fake Graph
API, with throttling (130429 past a rate, and a burst of refusals) and 5xx errors injected.

    python -m bench.whatsapp_outbound [--notices 1000] [--people 100] [--rate 60]
                                      [--postgres URL [--skip-unreachable]] [--no-sqlite]

Half the people wrote within the last day (free-form messages), half did not (their notices go
as the approved template). Measures, per database: messages accepted per second until every
notice was sent, the refusals met (throttled, 5xx); then checks that nothing was lost (every
notice sent, each person got all hers) and nothing doubled (Graph accepted exactly one message
per notice). Prints a table and merges the results into bench/results/whatsapp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from bench.common import databases, write_json
from bot.whatsapp.client import GraphClient
from bot.whatsapp.sender import WhatsAppSender
from core.bootstrap import Services
from core.config import Settings
from core.db import Database
from core.migrations import upgrade
from core.models import Channel, ChatIdentity, Member, OutboxMessage, OutboxStatus
from core.notify import outbox
from core.notify.rules import Notice
from tests.fakes.graph_api import FakeGraph

RESULTS = Path(__file__).parent / "results" / "whatsapp.json"


async def people(db: Database, count: int) -> list[tuple[int, str]]:
    """`count` members on WhatsApp; the even ones wrote an hour ago, the odd ones two days ago."""
    out = []
    async with db.transaction() as session:
        for n in range(count):
            wa_id = str(4917600000000 + n)
            member = Member(name=f"Person {n}", language="en")
            session.add(member)
            await session.flush()
            assert member.id is not None
            ago = timedelta(hours=1 if n % 2 == 0 else 48)
            session.add(
                ChatIdentity(
                    channel=Channel.WHATSAPP,
                    external_id=wa_id,
                    chat_id=wa_id,
                    member_id=member.id,
                    last_inbound_at=db.now() - ago,
                )
            )
            out.append((member.id, wa_id))
    return out


async def sent_rows(db: Database) -> int:
    async with db.reads() as session:
        query = select(func.count()).where(OutboxMessage.status == OutboxStatus.SENT)
        return int((await session.exec(query)).one())


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url)
    who = await people(db, args.people)
    async with db.transaction() as session:
        for n in range(args.notices):
            member_id, _ = who[n % len(who)]
            notice = Notice(member_id, "driver.share_location_again", {})
            await outbox.add(session, notice, f"bench:{n}")
    async with FakeGraph() as fake:
        fake.approve("lastmile_update", "en", 1)
        for n, (_, wa_id) in enumerate(who):
            if n % 2 == 0:
                fake.wrote(wa_id)
        fake.rate_limit(per_second=args.rate)
        fake.fail_next(130429, times=5, retry_after=1)
        fake.fail_next(131000, times=5, status=500, retry_after=0.5)
        settings = Settings(
            app={"data_dir": Path(args.data_dir)},
            whatsapp={
                "access_token": fake.token,
                "phone_number_id": fake.phone_number_id,
                "app_secret": fake.app_secret,
                "api_url": fake.url,
                "rate_per_s": args.rate * 1.5,  # faster than Graph allows: throttled
                "chat_rate_per_s": 50,
            },
            _env_file=None,
        )  # type: ignore[call-arg]
        sender = WhatsAppSender(Services.build(settings, db), GraphClient(settings.whatsapp))
        began = time.perf_counter()
        task = asyncio.create_task(sender.run())
        for _ in range(int(args.timeout * 10)):  # bounded: until every notice was sent
            if await sent_rows(db) >= args.notices:
                break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - began
        sender.stop()
        await asyncio.wait_for(task, 30)
        await sender.client.aclose()
        done = await sent_rows(db)
        accepted = [s for s in fake.sent if s.ok]
        refused = Counter(s.error for s in fake.sent if not s.ok)
    await db.dispose()
    per_person = Counter(s.to for s in accepted)
    expected = Counter(who[n % len(who)][1] for n in range(args.notices))
    return {
        "notices": args.notices,
        "people": args.people,
        "seconds": round(elapsed, 1),
        "sent_per_s": round(len(accepted) / elapsed, 1),
        "templates": sum(1 for s in accepted if s.type == "template"),
        "throttled": refused.get(130429, 0),
        "server_errors": refused.get(131000, 0),
        "lost": args.notices - done,
        "duplicated": len(accepted) - done,
        "people_short": sum(1 for wa_id, n in expected.items() if per_person[wa_id] != n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--rate", type=float, default=60, help="Graph's limit, messages/s")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--postgres")
    parser.add_argument("--skip-unreachable", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    async def work(url: str) -> dict[str, Any]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            args.data_dir = tmp
            return await run(url, args)

    results = asyncio.run(databases(args, work))
    columns = ["seconds", "sent_per_s", "templates", "throttled", "server_errors", "lost",
               "duplicated", "people_short"]  # fmt: skip
    print(f"{'database':10}" + "".join(f"{c:>14}" for c in columns))
    for name, row in results.items():
        print(f"{name:10}" + "".join(f"{row[c]!s:>14}" for c in columns))
    params = {k: getattr(args, k) for k in ("notices", "people", "rate")}
    write_json(RESULTS, "outbound", params, results)


if __name__ == "__main__":
    main()
