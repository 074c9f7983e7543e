"""The one clock: a service built on a frozen or simulated clock stamps what it writes with that
clock's time, never the wall clock's."""

from __future__ import annotations

import ast
import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from core.clock import FixedClock, SimClock, system_clock
from core.config import Settings
from core.db import Database
from core.merchants import apikeys
from core.models import Customer, Order, OrderEvent, OutboxMessage, Role, WebhookDelivery
from core.scheduler import Scheduler, every
from tests.conftest import serve
from tests.factories import add_member, link_customer
from web.app import create_app

LONG_AGO = datetime(2031, 5, 6, 7, 0, tzinfo=UTC)  # years away from any wall clock running this
ORDER = {
    "external_ref": "C-1",
    "customer_name": "Ana Lima",
    "customer_phone": "+4915112345678",
    "address": "Hauptstr. 5, Berlin",
    "lat": 52.52,
    "lon": 13.40,
    "time_windows": [{"start": "2031-05-06T09:00:00+02:00", "end": "2031-05-06T12:00:00+02:00"}],
}


def test_fixed_clock_stands_still_until_moved():
    clock = FixedClock(LONG_AGO)
    assert clock() == clock() == LONG_AGO
    assert clock.advance(timedelta(minutes=5)) == LONG_AGO + timedelta(minutes=5)
    clock.set(LONG_AGO)
    assert clock() == LONG_AGO
    with pytest.raises(ValueError, match="naive"):
        FixedClock(datetime(2031, 5, 6, 7, 0))


def test_sim_clock_runs_faster_and_jumps():
    clock = SimClock(LONG_AGO, speed=3600)  # an hour a second
    first = clock()
    time.sleep(0.05)
    second = clock()
    assert LONG_AGO <= first < second
    assert timedelta(minutes=2) < second - first < timedelta(minutes=30)
    jumped = clock.advance(timedelta(hours=2))
    assert jumped - second >= timedelta(hours=2)
    assert clock.real_seconds(timedelta(hours=1)) == 1.0
    assert system_clock().tzinfo is UTC
    with pytest.raises(ValueError, match="speed"):
        SimClock(LONG_AGO, speed=0)


async def test_service_stamps_events_outbox_and_webhooks_with_its_clock(
    db: Database, tmp_path: Path
):
    """An order made and cancelled over the API of an app on a frozen clock: its row, its events,
    the customer's notices and the merchant's webhook deliveries all carry the clock's time."""
    clock = FixedClock(LONG_AGO)
    settings = Settings(
        app={"base_url": "https://deliver.example.com", "data_dir": tmp_path},
        webhooks={"allow_private": True, "require_https": False},
        _env_file=None,  # type: ignore[call-arg]
    )
    _, secret = await apikeys.create_key(db, "shop")
    async with serve(create_app(settings, db, clock=clock)) as base:
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=f"{base}/api/v1", headers=headers) as api:
            hook = await api.put("/webhook", json={"url": "http://127.0.0.1:9/hook"})
            assert hook.status_code == 200, hook.text
            created = await api.post("/orders", json=ORDER)
            assert created.status_code == 201, created.text
            order_id = created.json()["id"]
            async with db.reads() as session:
                customer = (await session.exec(select(Customer))).one()
            member = await add_member(db, "Ana", [Role.CUSTOMER], telegram_chat_id=77)
            await link_customer(db, customer.id, member)
            later = clock.advance(timedelta(minutes=7))
            cancelled = await api.post(f"/orders/{order_id}/cancel", json={"reason": "moved"})
            assert cancelled.status_code == 200, cancelled.text

    async with db.reads() as session:
        order = await session.get(Order, order_id)
        events = (await session.exec(select(OrderEvent).order_by(col(OrderEvent.id)))).all()
        notices = (await session.exec(select(OutboxMessage))).all()
        deliveries = (await session.exec(select(WebhookDelivery))).all()
    assert order is not None
    assert (order.created_at, order.updated_at) == (LONG_AGO, later)
    assert [(e.kind, e.created_at) for e in events] == [
        ("created", LONG_AGO),
        ("status_changed", later),
    ]
    assert [(n.template, n.created_at, n.next_attempt_at) for n in notices] == [
        ("customer.order_cancelled", later, later)
    ]
    assert sorted(d.created_at for d in deliveries) == [LONG_AGO, later]


async def test_the_scheduler_sleeps_in_real_time_on_a_fast_clock(db: Database):
    """Fire times are on the service's clock; on one running an hour a second, a job due in a
    simulated minute is a sixtieth of a real second away, not a minute (nor a whole tick)."""
    clock = SimClock(LONG_AGO.replace(minute=0, second=30), speed=3600)
    noop = every("noop", timedelta(minutes=1), lambda: asyncio.sleep(0))
    fast = Scheduler(db, [noop], clock=clock, tick_s=5)
    assert fast._sleep_for(clock()) == 0.05  # (the shortest sleep)
    still = FixedClock(LONG_AGO.replace(minute=0, second=30))
    assert Scheduler(db, [noop], clock=still, tick_s=5)._sleep_for(still()) == 5


WALL_CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
    ("time", "asctime"),
    ("time", "strftime"),
}
WALL_CLOCK_IMPORTS = {"time", "time_ns", "localtime", "gmtime", "ctime", "asctime", "strftime"}
READS_THE_CLOCK_ITSELF = {"core/clock.py"}
ROOT = Path(__file__).resolve().parent.parent


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def wall_clock_reads(source: str) -> list[tuple[int, str]]:
    """Where `source` reads the wall clock other than through the service's clock."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            owner, _, attr = name.rpartition(".")
            if (owner.rpartition(".")[2], attr) in WALL_CLOCK_CALLS:
                # time.localtime(seconds) and friends convert a given time; without one they read
                converts = attr in {"localtime", "gmtime", "ctime", "asctime"} and node.args
                if owner.endswith("time") and (converts or len(node.args) > 1):
                    continue
                found.append((node.lineno, f"{name}()"))
            elif name in {"utcnow", "system_clock"}:
                found.append((node.lineno, f"{name}()"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if alias.name in WALL_CLOCK_IMPORTS:
                    found.append((node.lineno, f"from time import {alias.name}"))
    return found


def test_the_scan_finds_each_way_of_reading_the_wall_clock():
    source = """
import datetime as dt, time
from datetime import UTC, date, datetime
from time import time as now_s
a = datetime.now(UTC); b = datetime.utcnow(); c = date.today(); d = dt.datetime.now()
e = time.time(); f = time.localtime(); g = utcnow(); h = system_clock()
ok = (time.monotonic(), time.localtime(5), datetime.fromtimestamp(5, UTC), clock())
"""
    assert [what for _, what in wall_clock_reads(source)] == [
        "from time import time",
        "datetime.now()",
        "datetime.utcnow()",
        "date.today()",
        "dt.datetime.now()",
        "time.time()",
        "time.localtime()",
        "utcnow()",
        "system_clock()",
    ]


def test_nothing_reads_the_wall_clock_but_the_clock():
    """core/, bot/, web/ and lastmile/ read time from the service's clock; `system_clock` is named
    (as a default), never called, outside core/clock.py; time.monotonic() measures durations."""
    offenders = []
    for package in ("core", "bot", "web", "lastmile"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in READS_THE_CLOCK_ITSELF:
                continue
            for line, what in wall_clock_reads(path.read_text()):
                offenders.append(f"{relative}:{line}: {what}")
    assert offenders == []
