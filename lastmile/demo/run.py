"""`lastmile demo`: the real service (uvicorn on a free 127.0.0.1 port, with its scheduler,
autopilot, senders and the sandbox channel) on a fresh SQLite database in a temporary folder, on
a simulated clock; the shop sends its orders through the REST API, the simulated people act in
the sandbox (lastmile.demo.people). The day ends by itself once every driver is off shift and
the owner's daily report has been sent; the summary is read from the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlmodel import col, select

from core.bootstrap import Services
from core.clock import SimClock
from core.config import Settings
from core.migrations import upgrade
from core.models import Order, OrderStatus, OutboxMessage, OutboxStatus, Placement
from core.reports import periods
from core.reports.push import REPORTS_DIR
from lastmile.demo import summary
from lastmile.demo.city import CITIES
from lastmile.demo.day import DayPlan, plan_day
from lastmile.demo.people import Driving, People
from lastmile.demo.setup import set_up
from lastmile.demo.shop import Shop
from lastmile.demo.terminal import Terminal, progress

log = logging.getLogger(__name__)
DAY = date(2026, 12, 9)  # a Wednesday (no weekly report): the same seed plays the same day
TICK_S = 0.2  # real seconds between the simulated people's turns
SHOW_S = 0.5  # real seconds between progress lines
START_HOUR = 7.9  # the day starts at 07:54, local
REPORT_AT = 20.0  # local hour the owner's daily report is pushed
OVERTIME_H = 1.5  # the day is cut off this long after the report, whatever is left
SKIP_MIN = timedelta(minutes=2)  # idle stretches shorter than this play at the day's pace
SKIP_MAX = timedelta(minutes=4)  # one jump at most (a driver's location comes every 2 minutes)
OPEN = (OrderStatus.NEW, OrderStatus.ASSIGNED, OrderStatus.PICKED_UP,
        OrderStatus.OUT_FOR_DELIVERY, OrderStatus.ARRIVED, OrderStatus.FAILED)  # fmt: skip


@dataclass(frozen=True)
class Options:
    orders: int = 80
    drivers: int = 6
    seed: int = 1
    city: str = "barcelona"
    speed: float = 180.0  # one delivery hour per 20 s
    out: Path = Path("data/demo")
    keep: Path | None = None  # copy the database here at the end (tests read it)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def open_orders(services: Services) -> int:
    async with services.db.reads() as session:
        statement = select(Order.id).where(col(Order.status).in_(OPEN))
        return len(list(await session.exec(statement)))


async def report_sent(services: Services) -> bool:
    async with services.db.reads() as session:
        statement = select(OutboxMessage.id).where(
            col(OutboxMessage.template).startswith("owner.report"),
            OutboxMessage.status == OutboxStatus.SENT,
        )
        return len(list(await session.exec(statement))) >= 3


def settings_for(folder: Path, port: int, zone: str) -> Settings:
    """The demo's own settings: the sandbox is its only channel, whatever the environment says
    (no Telegram, WhatsApp, Redis or OSRM configured for real use reaches into it)."""
    return Settings(
        telegram={"bot_token": None},
        whatsapp={"access_token": None},
        redis={"url": None},
        osrm={"url": None},
        database={"url": f"sqlite+aiosqlite:///{folder / 'lastmile.db'}"},
        app={"data_dir": folder, "timezone": zone, "base_url": f"http://127.0.0.1:{port}",
             "log_level": "WARNING"},
        dispatch={"mode": "auto"},
        reports={"daily_at": f"{int(REPORT_AT):02d}:{round(REPORT_AT % 1 * 60):02d}"},
        sandbox=True,
        _env_file=None,
    )  # fmt: skip


async def status_counts(services: Services) -> dict[str, int]:
    async with services.db.reads() as session:
        statement = select(Order.status, sa.func.count()).group_by(col(Order.status))
        return {str(status): int(n) for status, n in await session.exec(statement)}


class Interrupted(Exception):
    """The day was stopped (Ctrl-C or SIGTERM) before it ended."""


async def play(options: Options, echo: Terminal | None = None) -> summary.Summary:
    echo = echo or Terminal()
    grid = CITIES[options.city]
    day = plan_day(grid, options.orders, options.drivers, options.seed)
    zone = ZoneInfo(grid.timezone)
    midnight = datetime.combine(DAY, datetime.min.time(), zone)
    with tempfile.TemporaryDirectory(prefix="lastmile-demo-") as tmp:
        folder = Path(tmp)
        port = free_port()
        settings = settings_for(folder, port, grid.timezone)
        await upgrade(settings.database_url)
        clock = SimClock(midnight + timedelta(hours=START_HOUR), options.speed)
        from web.app import create_app

        app = create_app(settings, clock=clock)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=2)  # fmt: skip
        server = uvicorn.Server(config)
        # Ctrl-C and SIGTERM end the day here; uvicorn's own handlers would raise the signal
        # again once it has stopped, a traceback on the way out
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
        loop = asyncio.get_running_loop()
        for sent in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sent, partial(setattr, server, "should_exit", True))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
            result = await day_of(app, server, day, midnight, options, echo)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        if options.keep is not None:  # the service has stopped: its database is all written
            shutil.copy(folder / "lastmile.db", options.keep)
        return result


async def day_of(
    app: FastAPI, server: uvicorn.Server, day: DayPlan, midnight: datetime, options: Options,
    echo: Terminal,
) -> summary.Summary:  # fmt: skip
    services, sandbox, scheduler = app.state.services, app.state.sandbox, app.state.scheduler
    clock, zone = services.clock, ZoneInfo(day.grid.timezone)
    base = str(services.settings.app.base_url)
    org = await set_up(sandbox, day)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        shop = Shop(client, day, midnight)
        people = People(sandbox, set(), options.seed)
        drivers = [
            Driving(plan.key, org.drivers[plan.key], midnight + timedelta(hours=plan.starts),
                    midnight + timedelta(hours=plan.ends), (day.depot.lat, day.depot.lon))
            for plan in day.drivers
        ]  # fmt: skip
        customers = [o.customer_key for o in day.orders]
        away = {o.ref for o in day.orders if o.away}
        report_at = midnight + timedelta(hours=REPORT_AT)
        echo(f"Lastmile demo: {len(day.orders)} orders, {len(day.drivers)} drivers in "
             f"{day.grid.name}, {options.speed:g}x (seed {options.seed})")  # fmt: skip
        echo(f"  sandbox:   {base}sandbox")
        echo(f"  API docs:  {base}docs")
        shown_links = False
        last_line = 0.0
        loop = asyncio.get_running_loop()
        turns = [people.play(partial(people.drive, d), TICK_S) for d in drivers]
        turns.append(people.play(partial(people.customers, customers), TICK_S))
        playing = [asyncio.create_task(turn) for turn in turns]
        while not server.should_exit:
            now = clock()
            await shop.send_due(now)
            people.away = {shop.ids[r] for r in away if r in shop.ids}
            if shop.links and not shown_links:
                for link in shop.links:
                    echo(f"  tracking:  {link}")
                shown_links = True
            people.more_to_come = bool(shop.waiting) or await open_orders(services) > 0
            scheduler.wake()
            if loop.time() - last_line >= SHOW_S:
                last_line = loop.time()
                echo.progress(progress(now, zone, await status_counts(services), len(day.orders)))
            if all(d.state == "done" for d in drivers) and now < report_at:
                clock.advance(report_at - now)  # nothing left to do until the report
            elif (skip := await idle_for(services, drivers, shop, now)) is not None:
                clock.advance(skip)  # everyone waits: on to the next thing that happens
            if now >= report_at and await report_sent(services) and await settled(services):
                break
            if now >= report_at + timedelta(hours=OVERTIME_H):
                echo("the day is cut off: the report did not arrive in time")
                break
            await asyncio.sleep(TICK_S)
        for task in playing:
            task.cancel()
        await asyncio.gather(*playing, return_exceptions=True)
    if server.should_exit:  # Ctrl-C (or SIGTERM): no summary of half a day
        raise Interrupted
    period = periods.day(midnight.date(), zone)
    out = options.out / midnight.date().isoformat()
    await keep_report(services, Path(services.settings.app.data_dir) / REPORTS_DIR, out)
    driven = summary.Driven(
        km=sum(d.driven_m for d in drivers) / 1000,
        drive_h=sum(d.driven_s for d in drivers) / 3600,
        on_time=0,
        stops=sum(len(d.done) for d in drivers),
    )
    naive = await summary.naive_dispatch(day, services.planner.travel, midnight)
    result = await summary.read(services.db, period, clock(), zone, driven, naive, str(out))
    echo.progress(progress(clock(), zone, await status_counts(services), len(day.orders)))
    for line in result.lines():
        echo(line)
    return result


async def idle_for(
    services: Services, drivers: list[Driving], shop: Shop, now: datetime
) -> timedelta | None:
    """How far the clock may jump now: when no driver is driving or at work, the shop sends
    nothing and the service has nothing in hand (orders to place, messages to send), up to the
    next thing that happens, at most `SKIP_MAX` at a time (their live locations keep coming
    between jumps, so nobody looks lost); None when the day must go on at its pace."""
    until = [d.free_until(now) for d in drivers]
    if any(u is None for u in until):
        return None
    if shop.waiting:
        until.append(shop.midnight + timedelta(hours=shop.waiting[0].arrives))
    gap = min(u for u in until if u is not None) - now
    if gap < SKIP_MIN or not await settled(services) or await placing(services, now):
        return None
    return min(gap - SKIP_MIN / 2, SKIP_MAX)


async def placing(services: Services, now: datetime) -> bool:
    """The autopilot has orders to place now."""
    async with services.db.reads() as session:
        statement = select(Placement.order_id).where(
            col(Placement.parked).is_(False),
            col(Placement.due_at).is_(None) | (col(Placement.due_at) <= now),
        )
        return (await session.exec(statement.limit(1))).first() is not None


async def settled(services: Services) -> bool:
    """Nothing in the outbox is still to be sent."""
    async with services.db.reads() as session:
        statement = (
            select(OutboxMessage.id)
            .where(col(OutboxMessage.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
            .limit(1)
        )
        return (await session.exec(statement)).first() is None


async def keep_report(services: Services, source: Path, out: Path) -> None:
    """The owner's report as it landed in her chat: its text, chart and CSV, in `out`."""
    async with services.db.reads() as session:
        statement = select(OutboxMessage).where(OutboxMessage.template == "owner.report")
        texts = [str(row.params.get("text", "")) for row in await session.exec(statement)]
    await asyncio.to_thread(copy_report, source, out, texts[-1] if texts else "")


def copy_report(source: Path, out: Path, text: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in source.rglob("*"):
        if path.is_file():
            shutil.copy(path, out / path.name)
    (out / "report.txt").write_text(text + "\n")
