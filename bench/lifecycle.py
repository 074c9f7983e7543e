"""Throughput of the order lifecycle and CSV import on SQLite and PostgreSQL.

    python -m bench.lifecycle [--orders 300] [--rows 2000] [--postgres URL] [--json PATH]

Each run uses a fresh database (a temp SQLite file; a scratch PostgreSQL database created on the
server of --postgres and dropped afterwards). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import scratch_postgres
from core.config import normalize_database_url
from core.db import Database
from core.migrations import upgrade
from core.models import Channel, Driver, Member, MemberRole, OrderStatus, ProofKind, Role
from core.notify import outbox
from core.orders import service as orders
from core.orders.imports import import_orders
from core.orders.lifecycle import SYSTEM, Change, Window
from core.orders.service import OrderDraft

S = OrderStatus
DAY = datetime(2026, 11, 24, tzinfo=UTC)
PATH = [S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED]


def csv_text(rows: int) -> str:
    lines = ["external_ref,customer_name,customer_phone,address,lat,lon,date,time_window"]
    for i in range(rows):
        phone = f"+49151{10_000_000 + i % 500:08d}"
        lat, lon = 52.4 + (i % 97) / 1000, 13.3 + (i % 89) / 1000
        lines.append(f"B-{i},Customer {i},{phone},Street {i},{lat},{lon},2026-11-24,09:00-12:00")
    return "\n".join(lines) + "\n"


async def measure(url: str, n_orders: int, n_rows: int) -> dict[str, float]:
    await upgrade(url)
    db = Database(url)
    try:
        async with db.transaction() as session:
            member = Member(name="Dana", telegram_chat_id=1, telegram_user_id=1)
            customer = Member(name="Carla", telegram_chat_id=2, telegram_user_id=2)
            session.add_all([member, customer])
            await session.flush()
            session.add(MemberRole(member_id=member.id, role=Role.DRIVER))
            driver = Driver(member_id=member.id)
            session.add(driver)
        draft = OrderDraft(
            customer_name="Carla",
            address="Hauptstr. 5",
            lat=52.52,
            lon=13.40,
            windows=(Window(DAY.replace(hour=9), DAY.replace(hour=12)),),
            proof_required=ProofKind.NONE,
        )
        started = time.perf_counter()
        ids = [
            (await orders.create_order(db, draft, SYSTEM, source="bench")).id
            for _ in range(n_orders)
        ]
        created_s = time.perf_counter() - started

        started = time.perf_counter()
        for order_id in ids:
            for step in PATH:
                change = Change(driver_id=driver.id) if step is S.ASSIGNED else None
                await orders.change_status(db, order_id, step, SYSTEM, change)
        transitions_s = time.perf_counter() - started

        started = time.perf_counter()
        report = await import_orders(db, csv_text(n_rows), SYSTEM, timezone="Europe/Berlin")
        import_s = time.perf_counter() - started
        assert len(report.created) == n_rows and not report.errors, report.errors[:3]

        started = time.perf_counter()
        claimed = 0
        while batch := await outbox.claim(db, Channel.TELEGRAM, limit=50):
            for message in batch:
                await outbox.mark_sent(db, message.id)
            claimed += len(batch)
        outbox_s = time.perf_counter() - started
    finally:
        await db.dispose()
    return {
        "orders_created_per_s": n_orders / created_s,
        "transitions_per_s": n_orders * len(PATH) / transitions_s,
        "csv_rows_per_s": n_rows / import_s,
        "outbox_sent_per_s": claimed / outbox_s if claimed else 0.0,
        "outbox_messages": claimed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--postgres", help="PostgreSQL server URL to create a scratch database on")
    parser.add_argument("--json", type=Path, default=Path("bench/results/lifecycle.json"))
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        results["sqlite"] = asyncio.run(measure(url, args.orders, args.rows))
    if args.postgres:
        base = normalize_database_url(args.postgres)
        results["postgres"] = asyncio.run(
            scratch_postgres(base, lambda url: measure(url, args.orders, args.rows))
        )

    metrics = ["orders_created_per_s", "transitions_per_s", "csv_rows_per_s", "outbox_sent_per_s"]
    print(f"{'database':<10}" + "".join(f"{m:>22}" for m in metrics))
    for name, values in results.items():
        print(f"{name:<10}" + "".join(f"{values[m]:>22.0f}" for m in metrics))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": 2}
    args.json.write_text(
        json.dumps(
            {"orders": args.orders, "rows": args.rows, "machine": machine, **results}, indent=2
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
