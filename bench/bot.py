"""Telegram channel throughput: live-location updates through the webhook into the database, and
outbox delivery under Telegram's flood limits with 429s injected.

    python -m bench.bot location [--drivers 50] [--updates 5000] [--concurrency 8]
                                 [--postgres URL [--skip-unreachable]] [--no-sqlite]
                                 [--loop asyncio|uvloop] [--gc-freeze]
                                 [--profile] [--py-spy BIN]
    python -m bench.bot notify [--chats 100] [--per-chat 10] [--timeout 180]
    python -m bench.bot breakdown [--postgres URL]   (where one update's milliseconds go)
    python -m bench.bot all [options of both]
    python -m bench.bot serve                        (internal: the app process, env settings)

`location` seeds drivers on shift in a fresh database (a temp SQLite file; a scratch PostgreSQL
database created on the server of --postgres and dropped afterwards), starts the fake Bot API in
this process and the app in a subprocess (uvicorn, webhook mode, as `lastmile run` serves it),
then posts live-location edits with several keep-alive clients and checks no ping was lost.
`notify` sends the outbox through the real Sender to the fake with its flood limits on.
Prints a table per benchmark and merges the results into bench/results/bot.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import math
import os
import pstats
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import func, select

from bench.common import cpu_seconds, databases, free_port, percentile, spy_shares, write_json
from core.db import Database
from core.migrations import upgrade
from core.models import Driver, LocationPing, Member, OutboxMessage, OutboxStatus, Role, ShiftState
from core.notify import outbox
from core.notify.rules import Notice
from core.people import members
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import location, user

ROOT = Path(__file__).resolve().parent.parent
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
GROUPS = "APP DATABASE REDIS TELEGRAM WHATSAPP OSRM ROUTING GEOCODING ORDERS TRACKING"
SETTING_PREFIXES = tuple(f"{group}_" for group in GROUPS.split())
DRIVER_USER_BASE = 5_000_000
LIVE_MESSAGE_BASE = 900
CHAT_BASE = 7_000_000
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
TARGET_RATE, TARGET_P99_MS = 500.0, 25.0
INJECTED = "Too Many Requests: retry after 1 (injected)"


# -- helpers --------------------------------------------------------------------------------


# -- location: seeding and updates ----------------------------------------------------------


async def seed_drivers(url: str, count: int) -> None:
    """`count` drivers on shift, seen just now (so the stale check stays quiet)."""
    await upgrade(url)
    db = Database(url)
    try:
        async with db.transaction() as session:
            for i in range(count):
                uid = DRIVER_USER_BASE + i
                member = Member(name=f"Driver {i}", telegram_user_id=uid, telegram_chat_id=uid)
                session.add(member)
                await session.flush()
                await members.grant(session, member, Role.DRIVER)
            now = datetime.now(UTC)
            await session.exec(
                sa.update(Driver).values(  # type: ignore[call-overload]
                    shift_state=ShiftState.ON, shift_started_at=now, last_seen_at=now
                )
            )
    finally:
        await db.dispose()


def build_updates(drivers: int, count: int) -> tuple[list[bytes], list[bytes]]:
    """One live-location start per driver, then `count` edits round-robin: each driver moves
    ~8 m per edit along her own heading, one edit a second, all in the past."""
    steps = count // drivers + 1
    start = int(time.time()) - steps - 60
    people = [user(DRIVER_USER_BASE + i, f"Driver{i}") for i in range(drivers)]
    origin = [(52.45 + (i % 10) * 0.01, 13.30 + (i // 10) * 0.015) for i in range(drivers)]
    heading = [(37 * i) % 360 for i in range(drivers)]
    update_id = 10_000

    def body(i: int, step: int, edit: bool) -> bytes:
        nonlocal update_id
        update_id += 1
        rad = math.radians(heading[i])
        lat = origin[i][0] + step * 7e-5 * math.cos(rad)
        lon = origin[i][1] + step * 1.15e-4 * math.sin(rad)
        update = location(
            people[i],
            round(lat, 6),
            round(lon, 6),
            live_period=28800,
            edit=edit,
            message_id=LIVE_MESSAGE_BASE + i,
            heading=heading[i] or 360,
            horizontal_accuracy=8.5,
            date=start,
            edit_date=start + step if edit else None,
            update_id=update_id,
        )
        return json.dumps(update, separators=(",", ":")).encode()

    warmup = [body(i, 0, False) for i in range(drivers)]
    stream = [body(k % drivers, k // drivers + 1, True) for k in range(count)]
    return warmup, stream


async def post_all(
    url: str, bodies: list[bytes], secret: str, concurrency: int
) -> tuple[list[float], Counter[int | str], float]:
    """POST every body with `concurrency` keep-alive clients; latencies (s), statuses, wall."""
    latencies = [0.0] * len(bodies)
    statuses: Counter[int | str] = Counter()
    work = iter(enumerate(bodies))
    headers = {"Content-Type": "application/json", SECRET_HEADER: secret}
    connector = aiohttp.TCPConnector(limit=concurrency)
    per_request = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=per_request) as http:

        async def client() -> None:
            for index, body in work:
                started = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                latencies[index] = time.perf_counter() - started

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, statuses, wall


# -- location: the app process --------------------------------------------------------------


class AppProcess:
    """The app in its own process, as `lastmile run` serves it (uvicorn, one process)."""

    def __init__(self, url: str, fake: FakeTelegram, tmp: Path, args: argparse.Namespace):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.log_path = tmp / "server.log"
        self.profile_path = tmp / "server.prof" if args.profile else None
        env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=url,
            APP_HOST="127.0.0.1",
            APP_PORT=str(self.port),
            APP_BASE_URL=self.base,
            APP_DATA_DIR=str(tmp / "data"),
            APP_LOG_LEVEL="WARNING",
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_BOT_USERNAME=fake.username,
            TELEGRAM_API_URL=fake.url,
            TELEGRAM_MODE="webhook",
            TELEGRAM_WEBHOOK_SECRET=self.secret,
        )
        command = [sys.executable, "-m", "bench.bot", "serve", "--loop", args.loop]
        command += ["--gc-freeze"] if args.gc_freeze else []
        if self.profile_path:
            command += ["--profile-to", str(self.profile_path)]
        self.log = self.log_path.open("wb")
        # cwd: the temp dir, so no stray .env is read; the settings come from `env` only
        self.proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=self.log, stderr=self.log)

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_ready(self, fake: FakeTelegram) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the app exited ({self.proc.returncode}):\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200 and fake.webhook is not None:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit(f"the app did not answer /healthz in {START_TIMEOUT_S:.0f} s")

    async def profile(self, op: str) -> None:
        if self.profile_path:
            async with aiohttp.ClientSession() as http, http.post(f"{self.base}/_bench/{op}"):
                pass

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(self.proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"the app did not stop in {STOP_TIMEOUT_S:.0f} s: killed")
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class GcPauses:
    """Times the collector's pauses in the app process: full (generation 2) ones one by one,
    young ones summed per wall-clock second. Reported on stderr when the app stops."""

    def __init__(self) -> None:
        self.started = 0.0
        self.full: list[tuple[float, float, int]] = []  # (wall clock at the end, ms, collected)
        self.young: Counter[int] = Counter()  # second → ms
        self.objects = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        if info.get("generation") == 2:
            self.full.append((time.time(), ms, info.get("collected", 0)))
        else:
            self.young[int(time.time())] += ms

    def report(self) -> None:
        import gc

        live = gc.get_objects()
        summary = {
            "objects_at_start": self.objects,
            "objects_at_end": len(live),
            "full": self.full,
            "young": self.young,
        }
        print(f"GC-PAUSES {json.dumps(summary)}", file=sys.stderr, flush=True)


def gc_pauses(log_text: str, start: float, end: float) -> dict[str, Any] | None:
    """The app's collections while the stream ran, from its GC-PAUSES log line."""
    lines = [x for x in log_text.splitlines() if x.startswith("GC-PAUSES ")]
    if not lines:
        return None
    data = json.loads(lines[-1].split(" ", 1)[1])
    full = [(ms, n) for at, ms, n in data["full"] if start <= at <= end + 1]
    young = sum(ms for second, ms in data["young"].items() if start - 1 <= int(second) <= end)
    return {
        "objects_at_start": data["objects_at_start"],
        "objects_at_end": data["objects_at_end"],
        "full_count": len(full),
        "full_max_ms": round(max((ms for ms, _ in full), default=0.0), 1),
        "full_total_ms": round(sum(ms for ms, _ in full), 1),
        "full_collected": sum(n for _, n in full),
        "young_total_ms": round(young, 1),
    }


def serve(args: argparse.Namespace) -> None:
    """The app process: settings from the environment, uvicorn like `lastmile run`."""
    import gc

    import uvicorn

    from core.config import load_settings
    from web.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(load_settings())
    if args.profile_to:
        profiler = cProfile.Profile()

        async def start() -> dict[str, bool]:
            profiler.enable()
            return {"ok": True}

        async def stop() -> dict[str, bool]:
            profiler.disable()
            profiler.dump_stats(args.profile_to)
            return {"ok": True}

        app.add_api_route("/_bench/start", start, methods=["POST"])
        app.add_api_route("/_bench/stop", stop, methods=["POST"])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), log_level="warning"
    )
    config.access_log = False
    server = uvicorn.Server(config)
    if args.loop == "uvloop":
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    else:
        runner = asyncio.run
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    if args.gc_freeze:  # an experiment: what full collections cost when startup is frozen
        import bot.telegram.app  # noqa: F401  (the lifespan imports aiogram; freeze it too)

        gc.collect()
        gc.freeze()
    pauses.objects = len(gc.get_objects())
    with contextlib.suppress(KeyboardInterrupt):
        runner(server.serve())
    pauses.report()


SPY_FRAMES = {  # label → the frame (function and file) whose stacks it counts
    "HTTP request (uvicorn → FastAPI)": "RequestResponseCycle.run_asgi (uvicorn/",
    "webhook route telegram_update": "telegram_update (web/routes/webhooks.py)",
    "TelegramChannel.feed": "TelegramChannel.feed (bot/telegram/app.py)",
    "Update.model_validate": "BaseModel.model_validate (pydantic/",
    "Dispatcher.feed_update": "Dispatcher.feed_update (aiogram/",
    "Identify → identify": "identify (core/people/identities.py)",
    "driver flow: _location": "_location (core/conversations/driver.py)",
    "tracking.record": "record (core/drivers/positions.py)",
    "pool pre-ping (PostgreSQL)": "AsyncAdapt_asyncpg_connection._async_ping (sqlalchemy/",
    "socket writes (asyncio transport)": "_SelectorSocketTransport.write (asyncio/",
}


async def py_spy(binary: str, pid: int, out: Path) -> asyncio.subprocess.Process:
    command = [binary, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "200"]
    spy = await asyncio.create_subprocess_exec(
        *command, "--nolineno", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await asyncio.sleep(1.0)  # attaching takes a moment
    return spy


async def stop_py_spy(spy: asyncio.subprocess.Process) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await spy.wait()
    except TimeoutError:
        spy.kill()
        await spy.wait()


def top_of_profile(path: Path, out: Path, limit: int = 25) -> str:
    text = StringIO()
    stats = pstats.Stats(str(path), stream=text)
    stats.sort_stats("tottime").print_stats(limit)  # cumulative times of coroutines mislead
    out.write_text(text.getvalue())
    return text.getvalue()


# -- location: the benchmark ----------------------------------------------------------------


async def count_pings(url: str) -> int:
    db = Database(url)
    try:
        async with db.sessions() as session:
            return (await session.exec(select(func.count()).select_from(LocationPing))).one()
    finally:
        await db.dispose()


async def pg_sessions(url: str) -> int | None:
    """Sessions PostgreSQL has seen on this database so far (None on SQLite)."""
    if make_url(url).get_backend_name() != "postgresql":
        return None
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def measure_location(url: str, args: argparse.Namespace) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    await seed_drivers(url, args.drivers)
    warmup, stream = build_updates(args.drivers, args.updates)
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeTelegram() as fake:
            app = AppProcess(url, fake, Path(tmp), args)
            try:
                await app.wait_ready(fake)
                hook = f"{app.base}/webhooks/telegram"
                async with asyncio.timeout(60):
                    _, warm_status, _ = await post_all(hook, warmup, app.secret, 4)
                await asyncio.sleep(1.0)  # background ETA refresh after each first ping
                sessions_before = await pg_sessions(url)
                cpu_before = cpu_seconds(app.proc.pid)
                own_before = time.process_time()
                await app.profile("start")
                spy_out = args.json.parent / f"bot-pyspy-{backend}.txt"
                if args.py_spy:
                    spy_out.parent.mkdir(parents=True, exist_ok=True)
                    spy = await py_spy(args.py_spy, app.proc.pid, spy_out)
                stream_start = time.time()
                async with asyncio.timeout(args.timeout):
                    latencies, statuses, wall = await post_all(
                        hook, stream, app.secret, args.concurrency
                    )
                stream_end = time.time()
                if args.py_spy:
                    await stop_py_spy(spy)
                await app.profile("stop")
                cpu_after = cpu_seconds(app.proc.pid)
                own_cpu = time.process_time() - own_before
                pings = await count_pings(url)
                await asyncio.sleep(0.6)  # PostgreSQL reports ended sessions within 0.5 s
                sessions_after = await pg_sessions(url)
            finally:
                await app.stop()
            server_log = app.log_path.read_text(errors="replace")
            errors = server_log.count("Traceback")
            gc_stats = gc_pauses(server_log, stream_start, stream_end)
            profile_text = None
            if app.profile_path and app.profile_path.exists():
                out = args.json.parent / f"bot-profile-{backend}.txt"
                args.json.parent.mkdir(parents=True, exist_ok=True)
                profile_text = top_of_profile(app.profile_path, out)
                print(f"server profile (main thread) written to {out}")
    server_cpu = {
        name: round(cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0), 2) for name in cpu_after
    }
    server_cpu = {name: value for name, value in server_cpu.items() if value > 0}
    ms = [x * 1000 for x in latencies]
    result = {
        "updates": len(stream),
        "warmup": len(warmup),
        "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "warmup_statuses": {str(k): v for k, v in warm_status.items()},
        "wall_s": round(wall, 3),
        "updates_per_s": round(len(stream) / wall, 1),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "pings_in_db": pings,
        "pings_expected": len(warmup) + len(stream),
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_update": round(sum(server_cpu.values()) * 1000 / len(stream), 2),
        "loadgen_cpu_s": round(own_cpu, 2),
        "server_tracebacks": errors,
        "server_gc_during_stream": gc_stats,
        "slowest": [
            {"index": i, "ms": round(ms[i], 1)}
            for i in sorted(range(len(ms)), key=ms.__getitem__)[-5:]
        ],
        "meets_target": len(stream) / wall >= TARGET_RATE and percentile(ms, 99) <= TARGET_P99_MS,
    }
    if sessions_before is not None and sessions_after is not None:
        # minus this bench's own: the ping count and the first probe
        result["pg_sessions_opened_during_stream"] = sessions_after - sessions_before - 2
    if args.py_spy and spy_out.exists():
        result["py_spy_main_thread_shares"] = spy_shares(
            spy_out, SPY_FRAMES, "serve (bench/bot.py)"
        )
        result["py_spy_file"] = str(spy_out)
    if profile_text:
        result["profile_file"] = str(args.json.parent / f"bot-profile-{backend}.txt")
    return result


def print_location(results: dict[str, dict[str, Any]]) -> None:
    print(
        f"\nlocation updates via webhook (target ≥ {TARGET_RATE:.0f}/s, p99 ≤ {TARGET_P99_MS} ms)"
    )
    head = ["database", "updates", "ok", "upd/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    head += ["pings db/exp", "srv cpu s", "srv ms/upd", "target"]
    print(f"{head[0]:<10}" + "".join(f"{h:>13}" for h in head[1:]))
    for name, r in results.items():
        cells = [r["updates"], r["ok"], r["updates_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"]]
        cells += [r["max_ms"], f"{r['pings_in_db']}/{r['pings_expected']}"]
        cells += [round(sum(r["server_cpu_s"].values()), 2), r["server_cpu_ms_per_update"]]
        cells += ["met" if r["meets_target"] else "missed"]
        print(f"{name:<10}" + "".join(f"{c!s:>13}" for c in cells))
    for name, r in results.items():
        bad = {k: v for k, v in r["statuses"].items() if k != "200"}
        print(
            f"{name}: server CPU by thread {r['server_cpu_s']}, load generator CPU "
            f"{r['loadgen_cpu_s']} s, tracebacks in server log {r['server_tracebacks']}"
            + (f", non-200 answers {bad}" if bad else "")
        )
        gc_stats = r["server_gc_during_stream"]
        if gc_stats:
            print(
                f"{name}: app GC during the stream: {gc_stats['full_count']} full collections "
                f"(max {gc_stats['full_max_ms']} ms, total {gc_stats['full_total_ms']} ms), "
                f"young ones {gc_stats['young_total_ms']} ms; slowest requests "
                + ", ".join(f"#{s['index']} {s['ms']} ms" for s in r["slowest"])
            )
        for label, share in r.get("py_spy_main_thread_shares", {}).items():
            where = label if label.startswith("(") else f"of the busy main thread in {label}"
            print(f"{name}: py-spy {share:6.1%} {where}")


# -- breakdown: one update's milliseconds, in process -----------------------------------------


async def measure_breakdown(url: str, args: argparse.Namespace) -> dict[str, float]:
    """Mean ms of each step of one live-location edit, without HTTP: parsing the update, the
    Identify lookup, the ping's transaction, and the whole aiogram feed (all of them)."""
    from aiogram.types import Update

    from bot.telegram.app import TelegramChannel
    from core.bootstrap import Services
    from core.config import Settings
    from core.drivers import positions
    from core.people.identities import Person, identify, telegram_chat

    await seed_drivers(url, args.drivers)
    warmup, stream = build_updates(args.drivers, args.updates)
    n = min(len(stream), args.steps)
    updates = [json.loads(b) for b in stream[:n]]
    db = Database(url)
    out: dict[str, float] = {}
    async with FakeTelegram() as fake:
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            telegram={"bot_token": fake.token, "api_url": fake.url},  # type: ignore[arg-type]
        )
        services = Services.build(settings, db)
        channel = TelegramChannel(services)
        try:
            for body in warmup:
                await channel.feed(json.loads(body))
            await services.positions.drain()

            async def timed(name: str, step: Callable[[int], Awaitable[Any]]) -> None:
                started = time.perf_counter()
                for k in range(n):
                    await step(k)
                out[name] = round((time.perf_counter() - started) * 1000 / n, 3)

            async def parse(k: int) -> None:
                Update.model_validate(updates[k], context={"bot": channel.bot})

            async def identify(k: int) -> None:
                uid = updates[k]["edited_message"]["from"]["id"]
                await identify(db, telegram_chat(uid, uid), Person("Driver"))

            async def record(k: int) -> None:
                loc = updates[k]["edited_message"]["location"]
                at = datetime.fromtimestamp(updates[k]["edited_message"]["edit_date"], UTC)
                fix = positions.Fix(lat=loc["latitude"], lon=loc["longitude"], at=at, live=True)
                await positions.record(db, 1 + k % args.drivers, fix)

            async def select_one(k: int) -> None:
                async with db.sessions() as session:
                    await session.exec(select(sa.literal(1)))

            async def feed(k: int) -> None:
                update = dict(updates[k], update_id=updates[k]["update_id"] + 10_000_000)
                await channel.feed(update)

            await timed("parse Update (pydantic)", parse)
            await timed("identify (3 selects)", identify)
            await timed("session with SELECT 1", select_one)
            await timed("tracking.record (insert+update)", record)
            await timed("TelegramChannel.feed (all)", feed)
        finally:
            await services.close()
            await channel.bot.session.close()
            await db.dispose()
    out["aiogram + rest (feed - identify - record)"] = round(
        out["TelegramChannel.feed (all)"]
        - out["identify (3 selects)"]
        - out["tracking.record (insert+update)"],
        3,
    )
    return out


def print_breakdown(results: dict[str, dict[str, float]]) -> None:
    print("\nmean ms per step of one live-location edit, in process (no HTTP)")
    names = list(next(iter(results.values())))
    print(f"{'step':<44}" + "".join(f"{db:>12}" for db in results))
    for name in names:
        print(f"{name:<44}" + "".join(f"{r[name]:>12.3f}" for r in results.values()))


# -- notify ---------------------------------------------------------------------------------


async def inject_429s(fake: FakeTelegram, args: argparse.Namespace) -> int:
    injected = 0
    for _ in range(args.injections):
        await asyncio.sleep(args.inject_every)
        fake.fail_next(
            "sendMessage", code=429, retry_after=1, times=args.inject_times, description=INJECTED
        )
        injected += args.inject_times
    return injected


async def measure_notify(url: str, args: argparse.Namespace) -> dict[str, Any]:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bot.telegram.sender import Sender
    from core.bootstrap import Services
    from core.config import Settings

    await upgrade(url)
    db = Database(url)
    total = args.chats * args.per_chat
    chat_ids = [CHAT_BASE + i for i in range(args.chats)]
    async with db.transaction() as session:
        people = [
            Member(name=f"Chat {c}", telegram_user_id=c, telegram_chat_id=c) for c in chat_ids
        ]
        session.add_all(people)
        await session.flush()
        for k in range(total):
            member_id = people[k % args.chats].id
            assert member_id is not None
            notice = Notice(member_id, "driver.share_location_again", {})
            await outbox.add(session, notice, f"bench-notify:{k}")

    async def unsent() -> int:
        async with db.sessions() as session:
            statement = select(func.count()).where(OutboxMessage.status != OutboxStatus.SENT)
            return (await session.exec(statement)).one()

    async with FakeTelegram() as fake:
        fake.flood_limit(per_second=30, per_chat_per_second=1, retry_after=1)
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            telegram={"bot_token": fake.token, "api_url": fake.url},  # type: ignore[arg-type]
        )
        services = Services.build(settings, db)
        bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
        sender = Sender(bot, services)
        started = time.perf_counter()
        running = asyncio.create_task(sender.run())
        injector = asyncio.create_task(inject_429s(fake, args))
        left = total
        try:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and not running.done():
                left = await unsent()
                if left == 0:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
        finally:
            sender.stop()
            injector.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), 30)
            running.cancel()
            await asyncio.gather(running, injector, return_exceptions=True)
            await bot.session.close()
            await services.close()
        left = await unsent()
        async with db.sessions() as session:
            rows = (
                await session.exec(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                )
            ).all()
            sent_at = (
                await session.exec(
                    select(OutboxMessage.recipient_member_id, OutboxMessage.sent_at).order_by(
                        OutboxMessage.id  # type: ignore[arg-type]
                    )
                )
            ).all()
        by_status = {str(status): n for status, n in rows}
        sends = fake.calls_to("sendMessage")
    # a chat's messages should arrive in the order they were written
    last: dict[int, datetime] = {}
    overtaken = 0
    for member_id, at in sent_at:
        if at is not None and member_id in last and at < last[member_id]:
            overtaken += 1
        if at is not None:
            last[member_id] = max(at, last.get(member_id, at))
    await db.dispose()
    ok = [c for c in sends if c.ok]
    per_chat = Counter(c.chat_id for c in ok)
    duplicated = sum(max(0, per_chat[c] - args.per_chat) for c in chat_ids)
    refused = [c for c in sends if c.error_code == 429]
    injected = sum(1 for c in refused if c.description == INJECTED)
    flood = [c for c in refused if c.description != INJECTED]
    # a flood 429 whose chat had an accepted send less than 1 s before: the per-chat window
    chat_flood = sum(
        1 for c in flood if any(o.chat_id == c.chat_id and 0 <= c.at - o.at < 1.0 for o in ok)
    )
    times = sorted(c.at for c in ok)
    peak, j = 0, 0
    for i, at in enumerate(times):  # most successful sends in any 1 s window
        while at - times[j] >= 1.0:
            j += 1
        peak = max(peak, i - j + 1)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    floor = max(args.per_chat - 1, total / 30)
    return {
        "notices": total,
        "chats": args.chats,
        "rate_per_s": settings.telegram.rate_per_s,
        "chat_rate_per_s": settings.telegram.chat_rate_per_s,
        "delivered": len(ok),
        "lost": left,
        "duplicated": duplicated,
        "outbox_by_status": by_status,
        "http_429": len(refused),
        "http_429_injected": injected,
        "http_429_flood": len(flood),
        "http_429_flood_per_chat": chat_flood,
        "http_429_flood_overall": len(flood) - chat_flood,
        "other_errors": sum(1 for c in sends if not c.ok and c.error_code != 429),
        "elapsed_s": round(elapsed, 2),
        "msg_per_s": round(len(ok) / elapsed, 2),
        "msg_per_s_first_to_last_send": round((len(ok) - 1) / span, 2) if span else None,
        "peak_sends_in_1s": peak,
        "ideal_floor_s": round(floor, 1),
        "sent_before_an_older_message_of_its_chat": overtaken,
        "chats_short": sum(1 for c in chat_ids if per_chat[c] < args.per_chat),
    }


def print_notify(results: dict[str, dict[str, Any]]) -> None:
    print("\noutbox → Telegram with flood limits 30/s, 1/s per chat, 429s injected")
    head = ["database", "notices", "delivered", "lost", "duplicated", "429 inj/flood"]
    head += ["elapsed s", "msg/s", "of 30/s", "peak/1s", "floor s"]
    print(f"{head[0]:<10}" + "".join(f"{h:>14}" for h in head[1:]))
    for name, r in results.items():
        cells = [r["notices"], r["delivered"], r["lost"], r["duplicated"]]
        cells += [f"{r['http_429_injected']}/{r['http_429_flood']}", r["elapsed_s"]]
        cells += [r["msg_per_s"], f"{r['msg_per_s'] / r['rate_per_s']:.0%}", r["peak_sends_in_1s"]]
        cells += [r["ideal_floor_s"]]
        print(f"{name:<10}" + "".join(f"{c!s:>14}" for c in cells))
    for name, r in results.items():
        print(
            f"{name}: outbox rows by status {r['outbox_by_status']}; flood 429s: "
            f"{r['http_429_flood_overall']} over 30/s, {r['http_429_flood_per_chat']} over 1/s "
            f"per chat; first-to-last send {r['msg_per_s_first_to_last_send']} msg/s; "
            f"{r['sent_before_an_older_message_of_its_chat']} messages overtook an older one "
            "of their chat"
        )


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["location", "notify", "breakdown", "all", "serve"])
    parser.add_argument("--drivers", type=int, default=50)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=180.0, help="bound of one run (s)")
    parser.add_argument("--postgres", help="PostgreSQL server URL to create a scratch database on")
    parser.add_argument("--skip-unreachable", action="store_true", help="skip PG if unreachable")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--profile", action="store_true", help="cProfile the app process")
    parser.add_argument("--py-spy", metavar="BIN", help="sample the app with this py-spy")
    parser.add_argument("--gc-freeze", action="store_true", help="app: gc.freeze() at start")
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=1000, help="breakdown: updates per step")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--per-chat", type=int, default=10)
    parser.add_argument("--injections", type=int, default=3, help="notify: bursts of 429s")
    parser.add_argument("--inject-times", type=int, default=25, help="notify: 429s per burst")
    parser.add_argument("--inject-every", type=float, default=2.0, help="notify: seconds apart")
    parser.add_argument("--json", type=Path, default=Path("bench/results/bot.json"))
    return parser.parse_args()


def problems(section: str, results: dict[str, dict[str, Any]]) -> list[str]:
    """What went wrong beyond speed: lost or repeated pings and messages, failed requests."""
    found = []
    for name, r in results.items():
        if section == "location" and r["ok"] != r["updates"]:
            found.append(f"{name}: {r['updates'] - r['ok']} updates not answered 200")
        if section == "location" and r["pings_in_db"] != r["pings_expected"]:
            found.append(f"{name}: {r['pings_in_db']} pings stored, {r['pings_expected']} sent")
        if section == "notify" and (r["lost"] or r["duplicated"]):
            found.append(f"{name}: {r['lost']} messages lost, {r['duplicated']} duplicated")
    return found


def main() -> None:
    args = parse_args()
    failed: list[str] = []
    if args.what == "serve":
        serve(args)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.what in ("location", "all"):
        results = asyncio.run(databases(args, lambda url: measure_location(url, args)))
        print_location(results)
        failed += problems("location", results)
        keys = ["drivers", "updates", "concurrency", "loop", "profile", "gc_freeze"]
        params = {k: getattr(args, k) for k in keys} | {"postgres": bool(args.postgres)}
        variant = [args.loop] if args.loop != "asyncio" else []
        variant += [f"concurrency{args.concurrency}"] * (args.concurrency != 8)
        variant += ["gc_freeze"] * args.gc_freeze
        variant += ["profiled"] * (args.profile or bool(args.py_spy))
        section = "_".join(["location", *variant])
        write_json(args.json, section, params, results)
    if args.what == "breakdown":
        results = asyncio.run(databases(args, lambda url: measure_breakdown(url, args)))
        print_breakdown(results)
        write_json(args.json, "breakdown", {"drivers": args.drivers, "steps": args.steps}, results)
    if args.what in ("notify", "all"):
        if args.what == "all":  # location ran on PostgreSQL already; notify on SQLite
            args.postgres, args.no_sqlite = None, False
        results = asyncio.run(databases(args, lambda url: measure_notify(url, args)))
        print_notify(results)
        failed += problems("notify", results)
        keys = ["chats", "per_chat", "injections", "inject_times", "inject_every", "timeout"]
        write_json(args.json, "notify", {k: getattr(args, k) for k in keys}, results)
    if failed:
        raise SystemExit("FAILED: " + "; ".join(failed))


if __name__ == "__main__":
    main()
