"""A busy hour on several instances behind a real load balancer (issue 16, item 5).

    python -m bench.instances_hour [--instances 2] [--throughput 1,2] [--drivers 300]
                                   [--orders 2000] [--streams 1000] [--minutes 20]
                                   [--restart-after 60] [--burst 15] [--postgres URL]
                                   [--redis redis://127.0.0.1:6379/15] [--pool 8,4]
                                   [--no-kill] [--keep] [--json PATH]

What runs, all on 127.0.0.1: a fresh PostgreSQL database created on the server of --postgres
(dropped afterwards); Redis (--redis, the database number in the URL is flushed first);
HAProxy from Debian's package (`apt-get install haproxy`) balancing round-robin over N
`lastmile run` processes, with TCP health checks (an HTTP check on /healthz marked every instance
down at once when the shared machine was overloaded and the database answered late), `retry-on
conn-failure` and `option redispatch`,
and an SSE-friendly tunnel timeout; the fake Bot API (tests/fakes/telegram_api.py) in webhook
mode: every instance's APP_BASE_URL is the balancer, so the webhook the instances register is the
balancer's, and the updates the bench plays are posted to that registered URL with its secret, as
Telegram would (a non-200 answer is retried after a second, as Telegram does).

The hour (`--instances` instances), played `60 / --minutes` times faster than real time:
- `--drivers` drivers on shift share a live location; each sends a position every 10 s (played
  time) through the balancer;
- `--orders` orders arrive through the REST API through the balancer, spread over the hour, each
  for one of up to 1,000 customers who have a Telegram chat (so each gets "order confirmed");
- `--streams` tracking pages are open on the live stream (/t/{token}/events) through the
  balancer, four per order, on orders out for delivery with the first drivers; a page whose
  stream breaks reconnects after 2 s, as EventSource does (`retry: 2000`);
- in the middle of the hour one instance is killed with SIGKILL and restarted
  `--restart-after` real seconds later, on the same port.
After the hour the outbox is left to drain (at most 120 s), then the bench prints and checks:
notifications lost and duplicated (duplicates whose first copy went out in the second before the
kill are counted apart, as cut by the kill), the combined Telegram send rate's maximum in any
1-second window and each chat's, pings stored against pings acknowledged, orders placed, and the
SSE latency (from the moment a position is posted to the balancer to the moment a page shows it)
p95 before and after the kill.

Before the hour, the cost of the live streams' database poll: transactions/s on the database
and the instances' CPU for `--burst` seconds with no page open, then with every page open and no
driver moving (the poll runs only while a page is open; pub/sub was not built: see the README).

The throughput runs (`--throughput 1,2`): for each N, N fresh instances behind the balancer,
location updates posted as fast as 32 connections allow for `--burst` s, then tracking JSON
(GET /t/{token}.json) the same way; the ratio of 2 instances to 1 is printed. The load generator
is this Python process, on the same 2 cores as the instances, PostgreSQL and HAProxy.

`--pool` sets each instance's DATABASE_POOL_SIZE,DATABASE_MAX_OVERFLOW: instances × their sum
must fit the server's max_connections (100 by default, shared here with everyone's tests: at
20 + 20 two instances ran out of connections and collapsed). `--keep` keeps the instances' and
HAProxy's logs. Writes bench/results/instances_hour.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import select

from bench.bot import DRIVER_USER_BASE, seed_drivers
from bench.common import cpu_seconds, free_port, percentile, scratch_postgres, write_json
from core.config import normalize_database_url
from core.db import Database
from core.merchants import apikeys
from core.models import Customer, Driver, Member, Order, OrderStatus, OutboxMessage, OutboxStatus
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import location, user

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "instances_hour.json"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PREFIXES = ("APP_", "DATABASE_", "REDIS_", "TELEGRAM_", "WHATSAPP_", "OSRM_", "ROUTING_",
            "GEOCODING_", "ORDERS_", "TRACKING_", "NOTIFY_", "DISPATCH_", "STORAGE_", "OUTBOX_",
            "WEBHOOKS_", "REPORTS_", "ALERTS_", "SANDBOX")  # fmt: skip
CUSTOMER_BASE = 8_000_000
LIVE_MESSAGE = 500
PAGES_PER_ORDER = 4
PING_EVERY_S = 10.0  # played time
START_S, STOP_S = 90.0, 20.0
DRAIN_S = 120.0
TARGET_RATE, TARGET_CHAT_RATE, TARGET_SSE_P95_S, TARGET_SCALE = 30, 1, 1.0, 1.6


# -- the cluster: N instances behind HAProxy --------------------------------------------------


HAPROXY_CFG = """\
global
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-keep-alive 60s
    retries 3
    retry-on conn-failure empty-response response-timeout
    option redispatch 1
frontend lastmile
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    default-server inter 1s fall 2 rise 2
{servers}
"""


class Cluster:
    def __init__(self, count: int, url: str, env: dict[str, str], folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ports = [free_port() for _ in range(count)]
        self.folder = folder
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)},
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "APP_BASE_URL": self.base,
            "APP_LOG_LEVEL": "WARNING",
            **env,
        }
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.cpu_done = 0.0  # CPU seconds of instances that were killed
        servers = "\n".join(
            f"    server i{i} 127.0.0.1:{port} check" for i, port in enumerate(self.ports)
        )
        config = folder / "haproxy.cfg"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(HAPROXY_CFG.format(port=self.port, servers=servers))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise SystemExit("HAProxy is needed: apt-get install -y haproxy")
        self.log = (folder / "haproxy.log").open("wb")
        self.balancer = subprocess.Popen(
            [haproxy, "-f", str(config), "-db"], stdout=self.log, stderr=self.log
        )
        for i in range(count):
            self.start(i)

    def start(self, i: int) -> None:
        folder = self.folder / f"instance-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "APP_DATA_DIR": str(folder / "data")}
        with (folder / "output.log").open("ab") as out:
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "lastmile", "run", "--port", str(self.ports[i])],
                env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        self.cpu_done += sum(cpu_seconds(proc.pid).values())
        proc.kill()
        proc.wait(STOP_S)

    def cpu(self) -> float:
        total = self.cpu_done
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    total += sum(cpu_seconds(proc.pid).values())
        return total

    def output(self, i: int) -> str:
        return (self.folder / f"instance-{i}" / "output.log").read_text(errors="replace")

    async def wait_ready(self, fake: FakeTelegram, only: int | None = None) -> None:
        deadline = time.monotonic() + START_S
        which = range(len(self.ports)) if only is None else [only]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for i in which:
                while True:
                    proc = self.procs[i]
                    if proc is None or proc.poll() is not None:
                        raise SystemExit(f"instance {i} exited:\n{self.output(i)[-3000:]}")
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.get(f"http://127.0.0.1:{self.ports[i]}/healthz") as r:
                            if r.status == 200:
                                break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"instance {i} did not answer in {START_S:.0f} s")
                    await asyncio.sleep(0.2)
            for _ in range(int(START_S * 10)):  # the webhook is set once an instance started
                if fake.webhook is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.5)  # the balancer's health checks (rise 2, every 1 s)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc is not None:
                try:
                    await asyncio.to_thread(proc.wait, STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.balancer.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.balancer.wait(5)
        self.log.close()

    def tracebacks(self) -> int:
        return sum(self.output(i).count("Traceback") for i in range(len(self.ports)))


# -- seeding --------------------------------------------------------------------------------


@dataclass
class Seeded:
    api_secret: str
    phones: list[str]
    stream_tokens: list[str]  # one per order out for delivery, the first drivers' orders
    driver_ids: dict[int, int]  # driver index → drivers.id


async def seed(url: str, args: argparse.Namespace) -> Seeded:
    await seed_drivers(url, args.drivers)  # migrates too
    db = Database(url)
    try:
        async with db.transaction() as session:
            drivers = list(await session.exec(select(Driver, Member).join(Member)))
        driver_ids = {
            (member.telegram_user_id or 0) - DRIVER_USER_BASE: driver.id or 0
            for driver, member in drivers
        }
        customers = min(args.orders, 1000)
        phones = [f"+4915{CUSTOMER_BASE + i:09d}" for i in range(customers)]
        async with db.transaction() as session:
            for i, phone in enumerate(phones):
                chat = CUSTOMER_BASE + i
                member = Member(name=f"Customer {i}", telegram_user_id=chat, telegram_chat_id=chat)
                session.add(member)
                await session.flush()
                session.add(Customer(name=f"Customer {i}", phone=phone, member_id=member.id))
        _, api_secret = await apikeys.create_key(db, "bench")
        tokens = []
        for k in range(max(1, math.ceil(args.streams / PAGES_PER_ORDER))):
            draft = OrderDraft(
                customer_name=f"Streamer {k}",
                address=f"Door {k}",
                lat=52.52 + (k % 20) * 0.002,
                lon=13.40 + (k // 20) * 0.002,
            )
            order = await orders.create_order(db, draft, SYSTEM, source="bench")
            change = Change(driver_id=driver_ids[k % args.drivers])
            await orders.change_status(db, order.id, OrderStatus.ASSIGNED, SYSTEM, change)
            await orders.change_status(db, order.id, OrderStatus.OUT_FOR_DELIVERY, SYSTEM)
            tokens.append(order.tracking_token)
    finally:
        await db.dispose()
    return Seeded(api_secret, phones, tokens, driver_ids)


# -- the players ----------------------------------------------------------------------------


class Pings:
    """Drivers' live locations posted to the registered webhook; when each position was posted."""

    def __init__(self, fake: FakeTelegram, drivers: int) -> None:
        self.fake = fake
        self.people = [user(DRIVER_USER_BASE + i, f"Driver{i}") for i in range(drivers)]
        self.step = [0] * drivers
        self.start = int(time.time()) - 60
        self.posted: dict[tuple[float, float], float] = {}  # position → perf_counter at POST
        self.acked = 0
        self.given_up = 0
        self.retried = 0
        self.update_id = 1_000_000
        # Telegram opens at most the webhook's max_connections (default 40) at once
        self.connections = asyncio.Semaphore(
            int(fake.webhook["max_connections"]) if fake.webhook else 40
        )

    def position(self, i: int, step: int) -> tuple[float, float]:
        return (round(52.40 + (i % 20) * 0.01 + step * 1e-5, 6),
                round(13.20 + (i // 20) * 0.01 + step * 1e-5, 6))  # fmt: skip

    def body(self, i: int) -> tuple[bytes, tuple[float, float]]:
        step = self.step[i]
        self.step[i] += 1
        self.update_id += 1
        lat, lon = self.position(i, step)
        update = location(
            self.people[i], lat, lon, live_period=28800, edit=step > 0,
            message_id=LIVE_MESSAGE + i, date=self.start,
            edit_date=self.start + step if step else None, update_id=self.update_id,
        )  # fmt: skip
        return json.dumps(update, separators=(",", ":")).encode(), (lat, lon)

    async def send(self, http: aiohttp.ClientSession, i: int) -> None:
        body, where = self.body(i)
        hook = self.fake.webhook
        assert hook is not None
        headers = {"Content-Type": "application/json", SECRET_HEADER: hook["secret_token"] or ""}
        for attempt in range(10):  # Telegram retries a failed delivery
            self.posted[where] = time.perf_counter()  # the SSE latency counts from the last try
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with (
                    self.connections,
                    http.post(hook["url"], data=body, headers=headers) as resp,
                ):
                    await resp.read()
                    if resp.status == 200:
                        self.acked += 1
                        return
            self.retried += attempt == 0
            await asyncio.sleep(1.0)
        self.given_up += 1

    async def play(self, http: aiohttp.ClientSession, until: float, every_s: float) -> None:
        drivers = len(self.people)
        tasks: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            await asyncio.sleep(every_s * i / drivers)
            while time.monotonic() < until:
                began = time.monotonic()
                task = asyncio.create_task(self.send(http, i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(max(0.0, every_s - (time.monotonic() - began)))

        await asyncio.gather(*(one(i) for i in range(drivers)))
        await asyncio.gather(*tasks)


class Orders:
    def __init__(self, base: str, secret: str, phones: list[str]) -> None:
        self.url = f"{base}/api/v1/orders"
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.phones = phones
        self.placed: set[str] = set()
        self.statuses: Counter[int | str] = Counter()
        self.given_up = 0
        self.connections = asyncio.Semaphore(16)  # a merchant's system: 16 requests at once

    async def place(self, http: aiohttp.ClientSession, n: int) -> None:
        ref = f"H-{n:05}"
        body = {
            "external_ref": ref,
            "customer_name": f"Customer {n % len(self.phones)}",
            "customer_phone": self.phones[n % len(self.phones)],
            "address": f"Street {n}, Berlin",
            "lat": 52.45 + (n % 50) * 0.002,
            "lon": 13.30 + (n // 50 % 50) * 0.002,
        }
        for _ in range(20):  # the same external_ref again is safe: 200 with the first order
            try:
                async with (
                    self.connections,
                    http.post(self.url, json=body, headers=self.headers) as resp,
                ):
                    await resp.read()
                    self.statuses[resp.status] += 1
                    if resp.status in (200, 201):
                        self.placed.add(ref)
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.statuses[type(exc).__name__] += 1
            await asyncio.sleep(1.0)
        self.given_up += 1

    async def play(self, http: aiohttp.ClientSession, count: int, seconds: float) -> None:
        began = time.monotonic()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, began + n * seconds / count - time.monotonic()))
            tasks.append(asyncio.create_task(self.place(http, n)))
        await asyncio.gather(*tasks)


@dataclass
class Pages:
    """Open tracking streams; latency of each position shown, by when it was posted."""

    base: str
    tokens: list[str]
    pings: Pings
    samples: list[tuple[float, float]] = field(default_factory=list)  # (posted, latency s)
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    opened: int = 0

    async def read(self, http: aiohttp.ClientSession, token: str, stop: asyncio.Event) -> None:
        first = True
        while not stop.is_set():
            try:
                async with http.get(f"{self.base}/t/{token}/events") as resp:
                    if resp.status != 200:
                        self.errors[f"HTTP {resp.status}"] += 1
                    else:
                        if first:
                            self.opened += 1
                            first = False
                        shown: Any = None  # the first event shows what was there before
                        async for raw in resp.content:
                            if raw.startswith(b"data:"):
                                at = json.loads(raw[5:]).get("driver_at")
                                if shown is not None and at and at != shown:
                                    self.saw(at)
                                shown = at or False
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            if stop.is_set():
                return
            self.reconnects += 1
            await asyncio.sleep(2.0)  # the stream's `retry: 2000`

    def saw(self, at: list[float]) -> None:
        posted = self.pings.posted.get((at[0], at[1]))
        if posted is not None:
            self.samples.append((posted, time.perf_counter() - posted))


# -- measuring ------------------------------------------------------------------------------


async def transactions(url: str) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        return int(row["n"])
    finally:
        await connection.close()


async def idle_cost(url: str, cluster: Cluster, seconds: float) -> dict[str, float]:
    """Database transactions/s and instances' CPU (% of one core) over `seconds` of no load."""
    tx, cpu, began = await transactions(url), cluster.cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    tx2, cpu2, took = await transactions(url), cluster.cpu(), time.perf_counter() - began
    return {
        "db_transactions_per_s": round((tx2 - tx - 2) / took, 1),  # minus this probe's own
        "instances_cpu_pct": round((cpu2 - cpu) * 100 / took, 1),
    }


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most of `times` (sorted) in any half-open window of `window` seconds."""
    best, left = 0, 0
    for right, at in enumerate(times):
        while at - times[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


async def outbox_counts(db: Database) -> Counter[str]:
    async with db.reads() as session:
        rows = await session.exec(
            select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
        )
        return Counter({str(status): n for status, n in rows})


async def drain(db: Database, seconds: float) -> Counter[str]:
    deadline = time.monotonic() + seconds
    while True:
        counts = await outbox_counts(db)
        busy = counts.get(str(OutboxStatus.PENDING), 0) + counts.get(str(OutboxStatus.SENDING), 0)
        if busy == 0 or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(1.0)


def notifications(fake: FakeTelegram, killed_at: float | None) -> dict[str, Any]:
    sends = [
        c for c in fake.calls
        if c.ok and c.method.lower().startswith("send") and c.method.lower() != "sendchataction"
    ]  # fmt: skip
    sends.sort(key=lambda c: c.at)
    first: dict[tuple[Any, str], float] = {}
    doubled, cut = 0, 0
    examples: list[str] = []
    per_chat: dict[Any, list[float]] = defaultdict(list)
    for call in sends:
        key = (call.chat_id, call.text or call.method)
        per_chat[call.chat_id].append(call.at)
        if key not in first:
            first[key] = call.at
        elif killed_at is not None and killed_at - 1.0 <= first[key] <= killed_at + 0.1:
            cut += 1
        else:
            doubled += 1
            examples.append(f"{call.chat_id}: {key[1][:60]!r} at +{call.at - first[key]:.1f} s")
    refused = Counter(c.error_code for c in fake.calls if not c.ok and c.error_code)
    return {
        "sent": len(sends),
        "distinct": len(first),
        "duplicated": doubled,
        "duplicated_cut_by_kill": cut,
        "max_per_1s_window": max_in_window([c.at for c in sends]),
        "max_per_chat_per_1s_window": max(
            (max_in_window(times) for times in per_chat.values()), default=0
        ),
        "chats": len(per_chat),
        "refused_by_bot_api": {str(k): v for k, v in refused.items()},
        "duplicated_examples": examples[:10],
    }


def sse_summary(samples: list[tuple[float, float]], since: float, until: float) -> dict[str, Any]:
    ms = sorted(latency * 1000 for posted, latency in samples if since <= posted < until)
    if not ms:
        return {"samples": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    return {
        "samples": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "max_ms": round(ms[-1], 1),
    }


async def count_rows(url: str, model: type) -> int:
    db = Database(url)
    try:
        async with db.reads() as session:
            return (await session.exec(select(sa.func.count()).select_from(model))).one()
    finally:
        await db.dispose()


def instance_env(args: argparse.Namespace, fake: FakeTelegram) -> dict[str, str]:
    return {
        "REDIS_URL": args.redis,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BOT_USERNAME": fake.username,
        "TELEGRAM_API_URL": fake.url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_SECRET": secrets.token_hex(16),
        "TELEGRAM_RATE_PER_S": str(TARGET_RATE),
        "TELEGRAM_CHAT_RATE_PER_S": str(TARGET_CHAT_RATE),
        "APP_SECRET_KEY": secrets.token_hex(32),
        "DISPATCH_MODE": "manual",  # the hour measures the instances, not the planner
        "DATABASE_POOL_SIZE": str(args.pool[0]),  # the shared server's max_connections is 100
        "DATABASE_MAX_OVERFLOW": str(args.pool[1]),
    }


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


# -- the hour -------------------------------------------------------------------------------


async def hour(url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    seeded = await seed(url, args)
    factor = 60.0 / args.minutes
    seconds = args.minutes * 60.0
    db = Database(url)
    async with FakeTelegram() as fake:
        cluster = Cluster(args.instances, url, instance_env(args, fake), tmp / "hour")
        try:
            await cluster.wait_ready(fake)
            await drain(db, 60)  # the seeded orders' messages go before the hour starts
            fake.calls.clear()
            pings = Pings(fake, args.drivers)
            tokens = [t for t in seeded.stream_tokens for _ in range(PAGES_PER_ORDER)]
            pages = Pages(cluster.base, tokens[: args.streams], pings)
            placed = Orders(cluster.base, seeded.api_secret, seeded.phones)
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
            stop = asyncio.Event()
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                no_pages = await idle_cost(url, cluster, args.burst)
                readers = [
                    asyncio.create_task(pages.read(http, token, stop)) for token in pages.tokens
                ]
                opening = time.monotonic()
                for _ in range(120):  # at most a minute
                    if pages.opened >= len(pages.tokens):
                        break
                    await asyncio.sleep(0.5)
                open_s = time.monotonic() - opening
                with_pages = await idle_cost(url, cluster, args.burst)
                print(
                    f"{pages.opened}/{len(pages.tokens)} pages open in {open_s:.1f} s; poll cost: "
                    f"{no_pages} without pages, {with_pages} with them; errors {dict(pages.errors)}"
                )
                cpu_before = cluster.cpu()
                began_mono, began = time.monotonic(), time.perf_counter()
                until = began_mono + seconds
                killed_at: float | None = None
                killed_fake_at: float | None = None

                async def kill_and_restart() -> None:
                    nonlocal killed_at, killed_fake_at
                    await asyncio.sleep(seconds / 2)
                    victim = args.instances - 1
                    cluster.kill(victim)
                    killed_at = time.perf_counter()
                    killed_fake_at = time.monotonic()  # the fake's clock
                    print(f"killed instance {victim} at {killed_at - began:.0f} s")
                    await asyncio.sleep(args.restart_after)
                    cluster.start(victim)
                    await cluster.wait_ready(fake, only=victim)
                    print(f"instance {victim} back at {time.perf_counter() - began:.0f} s")

                players = [
                    pings.play(http, until, PING_EVERY_S / factor),
                    placed.play(http, args.orders, seconds),
                ]
                if not args.no_kill and args.instances > 1:
                    players.append(kill_and_restart())
                await asyncio.gather(*players)
                ended = time.perf_counter()
                cpu_hour = cluster.cpu() - cpu_before
                await asyncio.sleep(3)  # the last positions reach the pages
                stop.set()
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            outbox = await drain(db, DRAIN_S)
            stored_pings = await count_rows(url, _ping_model())
            stored_orders = await _count_refs(db)
        finally:
            await cluster.stop()
            await db.dispose()
        sent = notifications(fake, killed_fake_at)
    unsent = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DEAD)
    pending = sum(outbox.get(str(status), 0) for status in unsent)
    kill_mark = killed_at if killed_at is not None else ended
    result = {
        "instances": args.instances,
        "played_hour_real_s": round(ended - began, 1),
        "time_factor": round(factor, 2),
        "killed_at_s": round(killed_at - began, 1) if killed_at else None,
        "pings_posted": sum(pings.step),
        "pings_acknowledged": pings.acked,
        "pings_given_up": pings.given_up,
        "pings_retried": pings.retried,
        "pings_stored": stored_pings,
        "orders_sent": args.orders,
        "orders_acknowledged": len(placed.placed),
        "orders_in_db": stored_orders,
        "order_statuses": {str(k): v for k, v in placed.statuses.items()},
        "outbox": dict(outbox),
        "notifications": sent,
        "notifications_lost": pending,
        "streams": len(pages.tokens),
        "streams_opened": pages.opened,
        "stream_reconnects": pages.reconnects,
        "stream_errors": dict(pages.errors),
        "sse_before_kill": sse_summary(pages.samples, began, kill_mark),
        "sse_after_kill": sse_summary(pages.samples, kill_mark, math.inf),
        "poll_cost_no_pages": no_pages,
        "poll_cost_pages_open": with_pages,
        "instances_cpu_s_in_hour": round(cpu_hour, 1),
        "instance_tracebacks": cluster.tracebacks(),
    }
    return result


def _ping_model() -> type:
    from core.models import LocationPing

    return LocationPing


async def _count_refs(db: Database) -> int:
    async with db.reads() as session:
        statement = select(sa.func.count()).where(Order.external_ref.like("H-%"))  # type: ignore[union-attr]
        return (await session.exec(statement)).one()


# -- throughput -----------------------------------------------------------------------------


async def blast(
    http: aiohttp.ClientSession, make: Any, seconds: float, concurrency: int
) -> tuple[float, Counter[int | str]]:
    statuses: Counter[int | str] = Counter()
    done = 0
    until = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < until:
            method, target, kwargs = make()
            try:
                async with http.request(method, target, **kwargs) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
                    done += resp.status == 200
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - began), statuses


async def throughput(url: str, args: argparse.Namespace, tmp: Path, n: int) -> dict[str, Any]:
    db = Database(url)
    async with db.reads() as session:
        tokens = list(await session.exec(select(Order.tracking_token)))
    await db.dispose()
    async with FakeTelegram() as fake:
        cluster = Cluster(n, url, instance_env(args, fake), tmp / f"throughput-{n}")
        try:
            await cluster.wait_ready(fake)
            pings = Pings(fake, args.drivers)
            pings.step = [10_000 * (n + 1)] * args.drivers  # later than the hour's
            hook = fake.webhook
            assert hook is not None
            headers = {"Content-Type": "application/json", SECRET_HEADER: hook["secret_token"]}
            counter = iter(range(10**9))

            def ping() -> tuple[str, str, dict[str, Any]]:
                body, _ = pings.body(next(counter) % args.drivers)
                return "POST", hook["url"], {"data": body, "headers": headers}

            def page() -> tuple[str, str, dict[str, Any]]:
                return "GET", f"{cluster.base}/t/{random.choice(tokens)}.json", {}

            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                await blast(http, ping, 2, args.concurrency)  # warm-up
                cpu = cluster.cpu()
                own = time.process_time()
                ping_rate, ping_status = await blast(http, ping, args.burst, args.concurrency)
                ping_cpu, ping_own = cluster.cpu() - cpu, time.process_time() - own
                await blast(http, page, 2, args.concurrency)
                cpu, own = cluster.cpu(), time.process_time()
                json_rate, json_status = await blast(http, page, args.burst, args.concurrency)
                json_cpu, json_own = cluster.cpu() - cpu, time.process_time() - own
        finally:
            await cluster.stop()
    return {
        "instances": n,
        "location_updates_per_s": round(ping_rate, 1),
        "location_statuses": {str(k): v for k, v in ping_status.items()},
        "location_instances_cpu_s": round(ping_cpu, 1),
        "location_loadgen_cpu_s": round(ping_own, 1),
        "tracking_json_per_s": round(json_rate, 1),
        "tracking_json_statuses": {str(k): v for k, v in json_status.items()},
        "tracking_json_instances_cpu_s": round(json_cpu, 1),
        "tracking_json_loadgen_cpu_s": round(json_own, 1),
    }


# -- printing -------------------------------------------------------------------------------


def verdicts(hour_result: dict[str, Any] | None, scale: list[dict[str, Any]]) -> list[tuple]:
    rows: list[tuple[str, Any, str, bool | None]] = []
    if hour_result:
        h = hour_result
        n = h["notifications"]
        rows += [
            ("notifications lost", h["notifications_lost"], "0", h["notifications_lost"] == 0),
            ("notifications duplicated", n["duplicated"], "0", n["duplicated"] == 0),
            ("  duplicated, cut by the kill", n["duplicated_cut_by_kill"], "counted apart", None),
            ("Telegram sends, max in 1 s", n["max_per_1s_window"], f"<= {TARGET_RATE}",
             n["max_per_1s_window"] <= TARGET_RATE),
            ("one chat, max in 1 s", n["max_per_chat_per_1s_window"], f"<= {TARGET_CHAT_RATE}",
             n["max_per_chat_per_1s_window"] <= TARGET_CHAT_RATE),
            ("pings stored / posted", f"{h['pings_stored']} / {h['pings_posted']}", "all",
             h["pings_stored"] == h["pings_posted"]),
            ("orders in db / sent", f"{h['orders_in_db']} / {h['orders_sent']}", "all",
             h["orders_in_db"] == h["orders_sent"]),
        ]  # fmt: skip
        for phase in ("before", "after"):
            p95 = h[f"sse_{phase}_kill"]["p95_ms"]
            ok = p95 is not None and p95 <= TARGET_SSE_P95_S * 1000
            rows.append((f"SSE p95 {phase} the kill (ms)", p95, "<= 1000", ok))
    by_n = {row["instances"]: row for row in scale}
    if 1 in by_n and 2 in by_n:
        for key, name in (("location_updates_per_s", "location updates"),
                          ("tracking_json_per_s", "tracking JSON")):  # fmt: skip
            ratio = by_n[2][key] / by_n[1][key] if by_n[1][key] else 0.0
            rows.append((f"{name}: 2 instances / 1", f"{ratio:.2f}x", f">= {TARGET_SCALE}x",
                         ratio >= TARGET_SCALE))  # fmt: skip
    return rows


def show(hour_result: dict[str, Any] | None, scale: list[dict[str, Any]]) -> None:
    if hour_result:
        h = hour_result
        print(
            f"\nthe hour: {h['instances']} instances, played in {h['played_hour_real_s']} s "
            f"(x{h['time_factor']}), one killed at {h['killed_at_s']} s; "
            f"{h['streams_opened']}/{h['streams']} pages, {h['stream_reconnects']} reconnects; "
            f"{h['notifications']['sent']} messages sent; "
            f"instances' CPU {h['instances_cpu_s_in_hour']} s"
        )
        print(
            f"poll cost: no pages {h['poll_cost_no_pages']}; pages open {h['poll_cost_pages_open']}"
        )
        print(f"SSE before {h['sse_before_kill']}; after {h['sse_after_kill']}")
    if scale:
        print(
            f"\n{'instances':>9} {'pings/s':>9} {'json/s':>9}  (load generator on the same cores)"
        )
        for row in scale:
            print(f"{row['instances']:>9} {row['location_updates_per_s']:>9} "
                  f"{row['tracking_json_per_s']:>9}")  # fmt: skip
    rows = verdicts(hour_result, scale)
    print(f"\n{'target':<34} {'measured':>16} {'wanted':>14}  ok")
    for name, value, wanted, ok in rows:
        mark = "-" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<34} {value!s:>16} {wanted:>14}  {mark}")


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2, help="instances in the hour (0: none)")
    parser.add_argument("--throughput", default="1,2", help="instance counts to measure ('': none)")
    parser.add_argument("--drivers", type=int, default=300)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=20.0, help="real minutes the hour takes")
    parser.add_argument("--restart-after", type=float, default=60.0, help="real seconds")
    parser.add_argument("--burst", type=float, default=15.0, help="seconds per throughput run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument(
        "--pool", type=lambda v: [int(x) for x in v.split(",")], default=[8, 4],
        help="DATABASE_POOL_SIZE,DATABASE_MAX_OVERFLOW of each instance",
    )  # fmt: skip
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    args = parser.parse_args()
    if args.drivers < 1 or args.orders < 1 or args.streams < 0 or args.minutes <= 0:
        parser.error("--drivers and --orders at least 1, --streams at least 0, --minutes > 0")
    return args


def main() -> None:
    args = parse_args()
    counts = [int(n) for n in args.throughput.split(",") if n.strip()]

    async def run(raw: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        url = normalize_database_url(raw)
        await flush_redis(args.redis)
        tmp = Path(tempfile.mkdtemp(prefix="lastmile-hour-"))
        try:
            hour_result = await hour(url, args, tmp) if args.instances > 0 else None
            if hour_result is None:
                await seed(url, args)
            scale = [await throughput(url, args, tmp, n) for n in counts]
        finally:
            if args.keep:
                print(f"logs kept in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return hour_result, scale

    hour_result, scale = asyncio.run(scratch_postgres(args.postgres, run))
    show(hour_result, scale)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    params["load_average_at_end"] = os.getloadavg()
    write_json(args.json, "hour", params, {"hour": hour_result, "throughput": scale,
               "finished": datetime.now(UTC).isoformat(timespec="seconds")})  # fmt: skip
    failed = [name for name, _, _, ok in verdicts(hour_result, scale) if ok is False]
    if failed:
        print(f"targets not met: {', '.join(failed)}")


if __name__ == "__main__":
    main()
