"""The dispatcher's live board at size: 200 drivers, 2,000 stops (10 per driver), in headless
Chromium against the real service (uvicorn on 127.0.0.1, in this process).

    python -m bench.board [--drivers 200] [--stops 2000] [--pings 300] [--renders 5] [--moves 40]
                          [--postgres URL [--skip-unreachable]] [--no-sqlite]

- first render: from navigation to the board drawn with its data (page, Leaflet, the first SSE
  message with every driver and stop, markers and lines drawn); targets ≤ 1 s.
- position update: a driver's ping written to the database (as the chat adapters write it) until
  her marker stands at the new place on the open board; p95 target ≤ 1 s.

Prints a table and writes bench/results/board.json. Needs Debian's chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from sqlmodel import select

from bench.common import databases, free_port, percentile, write_json
from core.bootstrap import Services
from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.drivers import positions
from core.migrations import upgrade
from core.models import (
    Customer,
    Driver,
    LocationPing,
    Member,
    MemberRole,
    Order,
    OrderStatus,
    Role,
    Route,
    RouteStop,
    ShiftState,
)
from core.webviews import board

ORIGIN = (52.52, 13.405)
RESULTS = Path(__file__).resolve().parent / "results" / "board.json"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spot(rng: random.Random) -> tuple[float, float]:
    angle, r = rng.uniform(0, 2 * math.pi), rng.random()
    return ORIGIN[0] + 0.08 * math.cos(angle) * r, ORIGIN[1] + 0.12 * math.sin(angle) * r


async def seed(db: Database, drivers: int, stops: int, pings: int) -> tuple[int, list[int]]:
    """A dispatcher, `drivers` drivers on shift, `stops` orders on their routes and `pings`
    earlier positions per driver, one every 10 s (bulk rows)."""
    rng = random.Random(15)
    now = system_clock()
    async with db.transaction() as session:
        boss = Member(name="Dora Dispatch")
        session.add(boss)
        await session.flush()
        assert boss.id is not None
        session.add(MemberRole(member_id=boss.id, role=Role.DISPATCHER))
        people = [Member(name=f"Driver {k}") for k in range(drivers)]
        session.add_all(people)
        await session.flush()
        vans = []
        for person in people:
            assert person.id is not None
            session.add(MemberRole(member_id=person.id, role=Role.DRIVER))
            lat, lon = spot(rng)
            vans.append(Driver(member_id=person.id, shift_state=ShiftState.ON,
                               shift_started_at=now, last_lat=lat, last_lon=lon,
                               last_seen_at=now, live_until=now + timedelta(hours=8)))  # fmt: skip
        session.add_all(vans)
        customer = Customer(name="Customer")
        session.add(customer)
        await session.flush()
        routes = [Route(driver_id=van.id or 0, service_date=now.date()) for van in vans]
        session.add_all(routes)
        await session.flush()
        made = []
        for k in range(stops):
            lat, lon = spot(rng)
            van = vans[k % drivers]
            status = OrderStatus.OUT_FOR_DELIVERY if k < drivers else OrderStatus.ASSIGNED
            made.append(Order(customer_id=customer.id or 0, driver_id=van.id, status=status,
                              address=f"{k} Bench Street", lat=lat, lon=lon))  # fmt: skip
        session.add_all(made)
        await session.flush()
        for k, order in enumerate(made):
            eta = now + timedelta(minutes=10 * (k // drivers + 1))
            session.add(RouteStop(route_id=routes[k % drivers].id or 0, order_id=order.id or 0,
                                  sequence=k // drivers, eta=eta))  # fmt: skip
    async with db.reads() as session:
        ids = [i for i in (await session.exec(select(Driver.id))).all() if i is not None]
    for driver_id in ids:
        lat, lon = spot(rng)
        rows = [
            {"driver_id": driver_id, "lat": lat, "lon": lon, "heading": k % 360, "live": True,
             "recorded_at": now - timedelta(seconds=10 * (pings - k)), "received_at": now}
            for k in range(pings)
        ]  # fmt: skip
        if rows:
            async with db.transaction() as session:
                await session.exec(sa.insert(LocationPing), params=rows)
    return boss.id, ids


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from web.app import create_app

    await upgrade(url)
    db = Database(url)
    started = time.perf_counter()
    boss, drivers = await seed(db, args.drivers, args.stops, args.pings)
    seeded_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url, app={"data_dir": tmp}, dispatch={"mode": "manual"},
            tracking={"tiles_url": ""}, _env_file=None,
        )  # fmt: skip
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, db), host="127.0.0.1",
                                               port=port, log_level="warning"))  # fmt: skip
        task = asyncio.create_task(server.serve())
        for _ in range(400):  # at most 20 s
            if server.started:
                break
            await asyncio.sleep(0.05)
        svc = Services.build(settings, db)
        link = await board.link(svc, boss, None)
        page_url = f"http://127.0.0.1:{port}" + link.removeprefix(svc.signer.base_url)
        renders, moves, drawing = [], [], []
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                for _ in range(args.renders):
                    begun = time.perf_counter()
                    await page.goto(page_url)
                    await page.wait_for_function(
                        "window.board && window.board.updates > 0", polling="raf", timeout=30_000
                    )
                    renders.append(time.perf_counter() - begun)
                    drawing.append(await page.evaluate("window.board.applyMs") / 1000)
                shown = await page.evaluate("document.querySelectorAll('.drv').length")
                rng = random.Random(7)
                for _ in range(args.moves):
                    driver = rng.choice(drivers)
                    lat, lon = (round(v, 6) for v in spot(rng))
                    begun = time.perf_counter()
                    fix = positions.Fix(lat, lon, system_clock(), live=True, heading=90)
                    await positions.record(db, driver, fix)
                    await page.wait_for_function(
                        f"String(window.board.markerAt({driver})) === '{lat},{lon}'",
                        polling="raf", timeout=10_000,
                    )  # fmt: skip
                    moves.append(time.perf_counter() - begun)
                    await asyncio.sleep(rng.uniform(0.05, 0.3))
                await browser.close()
        finally:
            server.should_exit = True
            await task
            await svc.close()
            await db.dispose()
    ms = lambda xs, q: round(percentile(xs, q) * 1000, 1)  # noqa: E731
    return {
        "seed_s": round(seeded_s, 2),
        "markers_shown": shown,
        "first_render_ms": {
            "p50": ms(renders, 50),
            "max": ms(renders, 100),
            "n": len(renders),
            "cold": round(renders[0] * 1000, 1),
        },
        "drawing_ms": {"p50": ms(drawing, 50), "max": ms(drawing, 100)},  # in the page
        "update_ms": {
            "p50": ms(moves, 50),
            "p95": ms(moves, 95),
            "max": ms(moves, 100),
            "n": len(moves),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--stops", type=int, default=2000)
    parser.add_argument("--pings", type=int, default=300, help="earlier pings per driver")
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--postgres")
    parser.add_argument("--skip-unreachable", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(databases(args, lambda url: run(url, args)))
    print(f"board: {args.drivers} drivers, {args.stops} stops (targets: ≤ 1000 ms each)")
    print(f"{'database':10} {'render p50':>11} {'render max':>11} {'update p50':>11} "
          f"{'update p95':>11} {'update max':>11} {'markers':>8}")  # fmt: skip
    for name, r in results.items():
        render, update = r["first_render_ms"], r["update_ms"]
        print(f"{name:10} {render['p50']:>11} {render['max']:>11} {update['p50']:>11} "
              f"{update['p95']:>11} {update['max']:>11} {r['markers_shown']:>8}")  # fmt: skip
    params = {k: v for k, v in vars(args).items() if k != "postgres"}
    write_json(RESULTS, "board", params, results)


if __name__ == "__main__":
    main()
