"""The autopilot's placement latency, through the real worker on a real database.

    python -m bench.autopilot latency [--drivers 50] [--stops 500] [--samples 50] [--few 50]
                                      [--postgres URL [--skip-unreachable]] [--no-sqlite]

On a fresh database (a SQLite file, and a scratch PostgreSQL database on the server of
--postgres): `--drivers` drivers on shift with live positions around a city, then

- batch: `--stops` orders committed in one transaction (as a CSV import or an API batch does);
  time from that commit until every one of them is assigned (one batch solve);
- single: with those open stops on the routes, `--samples` orders committed one at a time; time
  from each commit until it is assigned (cheapest insertion), p50/p95/max;
- few: then `--few` orders committed in one transaction, time until all are assigned (a batch
  solve checked against placing them one by one).

Targets (issue 11): single p95 ≤ 1 s; a 500-order batch placed in ≤ 15 s. Prints a table and
writes bench/results/autopilot-latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import col, func, select

from bench.common import databases, percentile, write_json
from core.bootstrap import Services
from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.migrations import upgrade
from core.models import Driver, Member, MemberRole, Order, OrderStatus, Role, ShiftState
from core.orders.lifecycle import SYSTEM, Window
from core.orders.service import OrderDraft, add_order, add_orders

CENTER = (52.52, 13.405)
PLACED = (OrderStatus.ASSIGNED, OrderStatus.OUT_FOR_DELIVERY)  # her first stop starts itself
RESULTS = Path(__file__).parent / "results" / "autopilot-latency.json"


def city(rng: np.random.Generator, n: int, radius_km: float = 10.0) -> list[tuple[float, float]]:
    angles = rng.uniform(0, 2 * np.pi, n)
    radii = radius_km * np.sqrt(rng.uniform(0, 1, n))
    lat = CENTER[0] + radii * np.sin(angles) / 111.0
    lon = CENTER[1] + radii * np.cos(angles) / (111.0 * np.cos(np.radians(CENTER[0])))
    return [(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


def draft(ref: str, at: tuple[float, float]) -> OrderDraft:
    now = system_clock()
    return OrderDraft(
        external_ref=ref,
        customer_name=f"Customer {ref}",
        address=f"{ref} street 1",
        lat=at[0],
        lon=at[1],
        windows=(Window(now, now + timedelta(hours=9)),),
        proof_required="none",
    )


async def seed_drivers(db: Database, points: list[tuple[float, float]]) -> None:
    now = system_clock()
    async with db.transaction() as session:
        for k, (lat, lon) in enumerate(points):
            member = Member(name=f"Driver {k}", telegram_chat_id=10_000 + k)
            session.add(member)
            await session.flush()
            session.add(MemberRole(member_id=member.id, role=Role.DRIVER))
            session.add(
                Driver(
                    member_id=member.id,  # type: ignore[arg-type]
                    shift_state=ShiftState.ON,
                    shift_started_at=now,
                    last_lat=lat,
                    last_lon=lon,
                    last_seen_at=now + timedelta(hours=2),  # stays "here" for the whole run
                    live_until=now + timedelta(hours=2),
                )
            )


async def assigned(db: Database, ids: list[int]) -> int:
    async with db.reads() as session:
        statement = select(func.count()).where(
            col(Order.id).in_(ids), col(Order.status).in_(PLACED)
        )
        return (await session.exec(statement)).one()


async def wait_assigned(db: Database, ids: list[int], every_s: float, limit_s: float) -> float:
    """Seconds until every order of `ids` is assigned (from now)."""
    started = time.perf_counter()
    while await assigned(db, ids) < len(ids):
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"not all of {len(ids)} orders assigned after {limit_s} s")
        await asyncio.sleep(every_s)
    return time.perf_counter() - started


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await upgrade(url)
    settings = Settings(database_url=url, dispatch={"mode": "auto"}, _env_file=None)  # type: ignore[call-arg]
    db = Database(url)
    services = Services.build(settings, db)
    pilot = services.autopilot
    rng = np.random.default_rng(args.seed)
    try:
        await seed_drivers(db, city(rng, args.drivers))
        pilot.start()
        batch = [(k, draft(f"B{k}", at)) for k, at in enumerate(city(rng, args.stops))]
        async with db.transaction() as session:
            outcomes = await add_orders(session, batch, SYSTEM, source="bench")
        ids = [order_id for order_id, _ in outcomes.values()]  # type: ignore[misc]
        batch_s = await wait_assigned(db, ids, 0.02, 120.0)
        solves = pilot.stats.solves

        singles: list[float] = []
        for k, at in enumerate(city(rng, args.samples)):
            async with db.transaction() as session:
                order = await add_order(session, draft(f"S{k}", at), SYSTEM, source="bench")
            singles.append(await wait_assigned(db, [order.id], 0.002, 30.0))  # type: ignore[list-item]

        few = [(k, draft(f"F{k}", at)) for k, at in enumerate(city(rng, args.few))]
        async with db.transaction() as session:
            outcomes = await add_orders(session, few, SYSTEM, source="bench")
        few_s = await wait_assigned(db, [i for i, _ in outcomes.values()], 0.02, 120.0)  # type: ignore[misc]
    finally:
        await services.close()
        await db.dispose()
    return {
        "batch_orders": len(ids),
        "batch_s": round(batch_s, 3),
        "batch_solves": solves,
        "single_samples": len(singles),
        "single_p50_s": round(percentile(singles, 50), 3),
        "single_p95_s": round(percentile(singles, 95), 3),
        "single_max_s": round(max(singles), 3),
        "insertions": pilot.stats.insertions,
        "few_orders": args.few,
        "few_s": round(few_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("mode", choices=["latency"])
    parser.add_argument("--drivers", type=int, default=50)
    parser.add_argument("--stops", type=int, default=500)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--few", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--skip-unreachable", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(databases(args, lambda url: measure(url, args)))
    print(f"\nautopilot placement, {args.drivers} drivers, {args.stops} open stops")
    print(f"{'database':<10} {'batch':>6} {'batch s':>8} {'solves':>6} "
          f"{'n':>4} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'few':>4} {'few s':>6}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:<10} {r['batch_orders']:>6} {r['batch_s']:>8.2f} {r['batch_solves']:>6} "
            f"{r['single_samples']:>4} {r['single_p50_s']:>7.3f} {r['single_p95_s']:>7.3f} "
            f"{r['single_max_s']:>7.3f} {r['few_orders']:>4} {r['few_s']:>6.2f}"
        )
    print("targets: batch of 500 ≤ 15 s; single p95 ≤ 1 s")
    params = {k: v for k, v in vars(args).items() if k != "postgres"}
    params["postgres"] = bool(args.postgres)
    write_json(RESULTS, "latency", params, results)


if __name__ == "__main__":
    main()
