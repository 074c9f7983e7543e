"""Reports: the time to compute a day's metrics and to build its whole report (text, chart, CSV).

    python -m bench.reports [--orders 5000] [--drivers 100] [--history-days 7]
                            [--postgres URL [--skip-unreachable]] [--no-sqlite] [--runs 3]

Writes a day of `--orders` orders and `--drivers` drivers (each on a 10-hour shift, a location
ping a minute: 60,000 pings for 100 drivers), with their windows, status changes (about 90 %
delivered, 7 % failed, half of those returned, the rest still on routes), ratings, planned
routes and two notifications per order; and as many orders on each of the `--history-days`
days before (the daily report compares with them). Then, on a fresh SQLite file and/or a
scratch PostgreSQL database, times `report_rows.load` + `metrics.compute` of the day, and
`reports.build` (the same, plus the 7 days before, the chart rendered in a worker thread and
the CSV). The first build of a run also imports matplotlib; the table shows it apart.
Target: ≤ 2 s each. Prints a table, writes bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import statistics
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.common import databases, write_json
from core.config import Settings
from core.db import Database
from core.migrations import upgrade
from core.models import (
    Customer,
    Driver,
    LocationPing,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    OutboxMessage,
    OutboxStatus,
    Route,
    Shift,
)
from core.reports import periods
from core.reports import rows as report_rows
from core.reports.metrics import compute

S = OrderStatus
ZONE = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 24)
REASONS = ("not_home", "wrong_address", "refused", "no_access", "damaged")
CHUNK = 2000


def local(d: date, hours: float) -> datetime:
    return datetime.combine(d, clock(0), tzinfo=ZONE) + timedelta(hours=hours)


async def add(db: Database, rows: list[Any]) -> None:
    """ORM rows (their ids are set afterwards)."""
    for start in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            session.add_all(rows[start : start + CHUNK])


async def insert(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    """Plain rows, many at a time (far faster than ORM objects for the big tables)."""
    for start in range(0, len(rows), CHUNK):
        async with db.transaction() as session:
            await session.execute(sa.insert(model.__table__), rows[start : start + CHUNK])


class Ids:
    def __init__(self) -> None:
        self.customer = self.order = 0


def order_row(template: dict[str, Any], **values: Any) -> dict[str, Any]:
    return template | {"tracking_token": secrets.token_urlsafe(18)} | values


async def write_day(
    db: Database, d: date, drivers: list[int], member: int, ids: Ids, args: argparse.Namespace
) -> None:
    """One day of orders, events, shifts (and for the reported day pings, routes, outbox)."""
    rng = random.Random(d.toordinal())
    template = Order(customer_id=0, address="").model_dump(exclude={"id"})
    customers, orders, windows, events = [], [], [], []
    for i in range(args.orders):
        ids.customer += 1
        ids.order += 1
        start = 8 + i % 9 + rng.random()
        out = start + rng.uniform(-0.3, 1.5)
        fate = rng.random()
        driver = drivers[i % len(drivers)]
        changes = [(S.ASSIGNED, 7.0, {"driver_id": driver}), (S.OUT_FOR_DELIVERY, out, {})]
        if fate < 0.90:
            changes += [(S.ARRIVED, out + 0.3, {}), (S.DELIVERED, out + rng.uniform(0.3, 0.7), {})]
        elif fate < 0.97:
            changes.append((S.FAILED, out + 0.3, {"reason_code": rng.choice(REASONS)}))
            if fate < 0.935:
                changes.append((S.RETURNED, out + 2, {}))
        else:
            changes = changes[:1]
        last = changes[-1][0]
        customers.append(
            {"id": ids.customer, "name": f"Customer {d}-{i}", "created_at": local(d, 0)}
        )
        created = local(d, rng.uniform(0, 7))
        orders.append(
            order_row(
                template,
                id=ids.order,
                external_ref=f"R-{d.isoformat()}-{i}",
                customer_id=ids.customer,
                address=f"Street {i}",
                status=last,
                attempts=sum(1 for s, _, _ in changes if s is S.OUT_FOR_DELIVERY),
                driver_id=driver,
                created_at=created,
                updated_at=created,
                final_at=local(d, changes[-1][1]) if last in (S.DELIVERED, S.RETURNED) else None,
                rating=rng.randint(1, 5) if last is S.DELIVERED and rng.random() < 0.4 else None,
            )
        )
        windows.append(
            {
                "order_id": ids.order,
                "stop": "delivery",
                "starts_at": local(d, start),
                "ends_at": local(d, start + 2),
            }
        )
        events += [
            {
                "order_id": ids.order,
                "kind": "status_changed",
                "to_status": status,
                "actor": "bench",
                "data": data,
                "created_at": local(d, hour),
            }
            for status, hour, data in changes
        ]
    await insert(db, Customer, customers)
    await insert(db, Order, orders)
    await insert(db, OrderWindow, windows)
    await insert(db, OrderEvent, events)
    await add(
        db, [Shift(driver_id=i, started_at=local(d, 8), ended_at=local(d, 18)) for i in drivers]
    )
    if d != DAY:
        return
    pings, routes = [], []
    for n, driver in enumerate(drivers):
        lat, lon = 52.4 + n / 500, 13.3
        for minute in range(600):
            lat += rng.uniform(-0.001, 0.004)
            lon += rng.uniform(-0.001, 0.004)
            at = local(d, 8 + minute / 60)
            pings.append(
                {"driver_id": driver, "lat": lat, "lon": lon, "live": True, "recorded_at": at,
                 "received_at": at}
            )  # fmt: skip
        routes.append(
            Route(
                driver_id=driver,
                service_date=d,
                planned_distance_m=60_000,
                planned_drive_s=9_000,
                planned_duration_s=36_000,
            )
        )
    await insert(db, LocationPing, pings)
    await add(db, routes)
    notices = [
        {
            "recipient_member_id": member,
            "template": "customer.order_confirmed",
            "params": {},
            "actions": [],
            "idempotency_key": f"bench:{order['id']}:{k}",
            "status": OutboxStatus.DEAD if rng.random() < 0.01 else OutboxStatus.SENT,
            "attempts": 1,
            "next_attempt_at": order["created_at"],
            "created_at": order["created_at"],
        }
        for order in orders
        for k in range(2)
    ]
    await insert(db, OutboxMessage, notices)


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url)
    try:
        began = time.perf_counter()
        members = [Member(name=f"Driver {n}") for n in range(args.drivers)]
        await add(db, members)
        drivers = [Driver(member_id=m.id) for m in members]
        await add(db, drivers)
        driver_ids = [d.id for d in drivers if d.id is not None]
        counters = Ids()
        for back in range(args.history_days, -1, -1):
            day = DAY - timedelta(days=back)
            await write_day(db, day, driver_ids, members[0].id or 0, counters, args)
        written = time.perf_counter() - began
        settings = Settings(app={"timezone": ZONE.key}, _env_file=None)  # type: ignore[call-arg]
        period = periods.day(DAY, ZONE)
        now = local(DAY, 30)
        metrics_s, build_s, sizes = [], [], {}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rows = await report_rows.load(db, period.start, period.end, now)
            m = compute(rows, period.start, period.end, ZONE)
            metrics_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            files = await periods.build(db, settings, period, "en", now=now)
            build_s.append(time.perf_counter() - t0)
            sizes = {"png_bytes": len(files.chart_png), "csv_rows": files.csv.count(b"\n") - 1}
        return {
            "write_s": round(written, 1),
            "metrics_s": [round(s, 3) for s in metrics_s],
            "build_s": [round(s, 3) for s in build_s],
            "metrics_median_s": round(statistics.median(metrics_s), 3),
            "build_first_s": round(build_s[0], 3),
            "build_median_s": round(statistics.median(build_s[1:] or build_s), 3),
            "delivered": m.delivered,
            "pings": len(rows.pings),
            **sizes,
        }
    finally:
        await db.dispose()


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nReports: a day of {args.orders} orders, {args.drivers} drivers, "
        f"{args.history_days} days before (target ≤ 2 s each)"
    )
    head = (
        f"{'database':<9} {'metrics s (median)':>18} {'report s (first)':>16} "
        f"{'report s (median)':>17} {'delivered':>9} {'pings':>6} {'CSV rows':>8} {'PNG KB':>6}"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(
            f"{name:<9} {r['metrics_median_s']:>18.3f} {r['build_first_s']:>16.3f} "
            f"{r['build_median_s']:>17.3f} {r['delivered']:>9} {r['pings']:>6} "
            f"{r['csv_rows']:>8} {r['png_bytes'] // 1024:>6}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--drivers", type=int, default=100)
    parser.add_argument("--history-days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="PostgreSQL server URL to create a scratch database on")
    parser.add_argument("--skip-unreachable", action="store_true", help="skip PG if unreachable")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--json", type=Path, default=Path("bench/results/reports.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(databases(args, lambda url: measure(url, args)))
    print_table(results, args)
    params = {k: getattr(args, k) for k in ("orders", "drivers", "history_days", "runs")}
    write_json(args.json, "day", params | {"postgres": bool(args.postgres)}, results)


if __name__ == "__main__":
    main()
