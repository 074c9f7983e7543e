"""Customer tracking pages under load: the JSON view and the live Server-Sent Events stream.

    python -m bench.web json|sse|all [--postgres URL [--skip-unreachable]] [--no-sqlite]
                                     [--orders 200] [--drivers 20]
                                     [--generator python|wrk|both] [--concurrency 16]
                                     [--warmup 2] [--duration 10]
                                     [--sse-orders 50] [--sse-pages 10] [--rounds 3]
                                     [--py-spy BIN]
    python -m bench.web serve        (internal: the app process, settings from the environment)

Each database (a temp SQLite file; a scratch PostgreSQL database created on the server of
--postgres and dropped afterwards) is seeded with `--orders` orders out for delivery spread over
`--drivers` drivers, plus one more driver with `--sse-orders` orders out for delivery for the SSE
test. The app runs in a subprocess (uvicorn, log level warning, no access log), as `lastmile run`
serves it.

`json` hammers GET /t/{token}.json with random tokens of the seeded orders over keep-alive
connections: with aiohttp from this process and/or with wrk (a Lua script picks the tokens),
`--warmup` seconds unmeasured, then `--duration` seconds measured.

`sse` opens `--sse-orders` × `--sse-pages` SSE streams on /t/{token}/events (all orders of the
SSE driver), waits for every initial `data:` event, then writes ONE position of that driver with
`core.drivers.positions.record` from this process (the database is the bus, as in production) and
measures, per stream, the time from the write's commit to the next `data:` event showing the new
position. `--rounds` times.

Prints a table per benchmark and merges the results into bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url
from sqlmodel import select

from bench.common import cpu_seconds, databases, free_port, percentile, spy_shares, write_json
from core.clock import system_clock
from core.db import Database
from core.drivers import positions
from core.migrations import upgrade
from core.models import Driver, Member, OrderStatus, Role
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.orders.service import OrderDraft
from core.people import members

ROOT = Path(__file__).resolve().parent.parent
GROUPS = "APP DATABASE REDIS TELEGRAM WHATSAPP OSRM ROUTING GEOCODING ORDERS TRACKING"
SETTING_PREFIXES = tuple(f"{group}_" for group in GROUPS.split())
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
TARGET_RATE, TARGET_P99_MS = 1000.0, 50.0
TARGET_SSE_P95_S = 1.0
ORIGIN = (52.52, 13.405)


# -- helpers (the same as bench/bot.py's) -----------------------------------------------------


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {name: round(after.get(name, 0.0) - before.get(name, 0.0), 2) for name in after}
    return {name: value for name, value in delta.items() if value > 0}


def ms_summary(ms: list[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


# -- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    tokens: list[str]  # orders of the JSON test
    sse_driver: int
    sse_tokens: list[str]
    seconds: float


async def add_driver(db: Database, name: str) -> int:
    async with db.transaction() as session:
        member = Member(name=name)
        session.add(member)
        await session.flush()
        await members.grant(session, member, Role.DRIVER)
        driver_id = (await session.exec(driver_of(member.id))).one()  # type: ignore[arg-type]
    return driver_id


def driver_of(member_id: int) -> Any:
    return select(Driver.id).where(Driver.member_id == member_id)


async def out_for_delivery(db: Database, driver_id: int, n: int, label: str) -> list[str]:
    """`n` new orders assigned to `driver_id` and out for delivery; their tracking tokens."""
    tokens = []
    for k in range(n):
        angle = random.uniform(0, 2 * math.pi)
        lat = ORIGIN[0] + 0.05 * math.cos(angle) * random.random()
        lon = ORIGIN[1] + 0.08 * math.sin(angle) * random.random()
        draft = OrderDraft(
            customer_name=f"Customer {label}-{k}", address=f"{k} Bench St", lat=lat, lon=lon
        )
        order = await orders.create_order(db, draft, SYSTEM, source="bench")
        assert order.id is not None
        await orders.change_status(
            db, order.id, OrderStatus.ASSIGNED, SYSTEM, Change(driver_id=driver_id)
        )
        await orders.change_status(db, order.id, OrderStatus.OUT_FOR_DELIVERY, SYSTEM)
        tokens.append(order.tracking_token)
    return tokens


async def seed(url: str, args: argparse.Namespace) -> Seeded:
    started = time.perf_counter()
    await upgrade(url)
    db = Database(url)
    try:
        tokens: list[str] = []
        for d in range(args.drivers):
            driver_id = await add_driver(db, f"Driver {d}")
            n = args.orders // args.drivers + (d < args.orders % args.drivers)
            tokens += await out_for_delivery(db, driver_id, n, f"d{d}")
            await positions.record(db, driver_id, positions.Fix(*ORIGIN, system_clock(), live=True))
        sse_driver = await add_driver(db, "Sam Streamer")
        sse_tokens = await out_for_delivery(db, sse_driver, args.sse_orders, "sse")
        await positions.record(db, sse_driver, positions.Fix(*ORIGIN, system_clock(), live=True))
    finally:
        await db.dispose()
    return Seeded(tokens, sse_driver, sse_tokens, time.perf_counter() - started)


# -- the app process --------------------------------------------------------------------------


class AppProcess:
    """The app in its own process, as `lastmile run` serves it (uvicorn, one process)."""

    def __init__(self, url: str, tmp: Path, args: argparse.Namespace):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=url,
            APP_HOST="127.0.0.1",
            APP_PORT=str(self.port),
            APP_BASE_URL=self.base,
            APP_DATA_DIR=str(tmp / "data"),
            APP_LOG_LEVEL="WARNING",
        )
        command = [sys.executable, "-m", "bench.web", "serve", "--loop", args.loop]
        self.log = self.log_path.open("wb")
        # cwd: the temp dir, so no stray .env is read; the settings come from `env` only
        self.proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=self.log, stderr=self.log)

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the app exited ({self.proc.returncode}):\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit(f"the app did not answer /healthz in {START_TIMEOUT_S:.0f} s")

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


def serve(args: argparse.Namespace) -> None:
    """The app process: settings from the environment, uvicorn like `lastmile run`."""
    import uvicorn

    from core.config import load_settings
    from web.app import create_app

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(load_settings())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(os.environ["APP_PORT"]),
        log_level="warning",
        access_log=False,
        loop="uvloop" if args.loop == "uvloop" else "asyncio",
        timeout_graceful_shutdown=2,  # open SSE streams would hold the shutdown forever
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


# -- py-spy -------------------------------------------------------------------------------------


async def py_spy(binary: str | None, pid: int, out: Path) -> asyncio.subprocess.Process | None:
    if not binary:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [binary, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "200", "--idle"]
    spy = await asyncio.create_subprocess_exec(
        *command, "--nolineno", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await asyncio.sleep(1.0)  # attaching takes a moment
    return spy


async def stop_py_spy(spy: asyncio.subprocess.Process | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await spy.wait()
    except TimeoutError:
        spy.kill()
        await spy.wait()


SPY_FRAMES = {  # label → a frame (function and file) whose stacks it counts
    "uvicorn HTTP parsing/protocol": "(uvicorn/protocols/",
    "starlette/fastapi routing+middleware": "(starlette/",
    "route tracking_json": "tracking_json (web/routes/tracking.py)",
    "SSE stream()": "stream (web/routes/tracking.py)",
    "live.Views._read (batched view reads)": "_read (core/tracking/live.py)",
    "public.read_views (one statement)": "read_views (core/tracking/public.py)",
    "LiveFeed.changes": "changes (core/tracking/live.py)",
    "SQLAlchemy ORM (sessions, loading)": "(sqlalchemy/orm/",
    "SQLAlchemy SQL compile": "compile (sqlalchemy/",
    "aiosqlite / asyncpg await": "(aiosqlite/",
    "TrackingView.body (JSON encoding)": "body (core/tracking/public.py)",
}


# -- json ---------------------------------------------------------------------------------------


async def python_load(
    base: str, tokens: list[str], concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    """`concurrency` keep-alive aiohttp clients; `warmup` s unmeasured, then `duration` s."""
    statuses: Counter[int | str] = Counter()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    per_request = aiohttp.ClientTimeout(total=30)
    rng = random.Random(1)
    async with aiohttp.ClientSession(connector=connector, timeout=per_request) as http:

        async def client(until: float, measured: bool) -> None:
            while time.perf_counter() < until:
                url = f"{base}/t/{rng.choice(tokens)}.json"
                started = time.perf_counter()
                try:
                    async with http.get(url) as resp:
                        await resp.read()
                        status: int | str = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                if measured:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1

        until = time.perf_counter() + warmup
        await asyncio.gather(*(client(until, False) for _ in range(concurrency)))
        own_before = time.process_time()
        started = time.perf_counter()
        until = started + duration
        await asyncio.gather(*(client(until, True) for _ in range(concurrency)))
        wall = time.perf_counter() - started
        own_cpu = time.process_time() - own_before
    ms = [x * 1000 for x in latencies]
    ok = statuses.get(200, 0)
    return {
        "generator": f"aiohttp {aiohttp.__version__} in the bench process",
        "concurrency": concurrency,
        "requests": len(ms),
        "ok": ok,
        "errors": len(ms) - ok,
        "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(ms) / wall, 1),
        **ms_summary(ms),
        "loadgen_cpu_s": round(own_cpu, 2),
    }


WRK_SCRIPT = """
local tokens = {%s}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
function init(args)
  math.randomseed(seed * 7919 + os.time())
end
function request()
  return wrk.format("GET", "/t/" .. tokens[math.random(#tokens)] .. ".json")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"connect\\":%%d,\\"read\\":%%d," ..
    "\\"write\\":%%d,\\"status\\":%%d,\\"timeout\\":%%d,\\"p50\\":%%d,\\"p90\\":%%d," ..
    "\\"p99\\":%%d,\\"max\\":%%d,\\"mean\\":%%f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


async def wrk_load(
    binary: str,
    base: str,
    tokens: list[str],
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    script = tmp / "tokens.lua"
    script.write_text(WRK_SCRIPT % ", ".join(f'"{t}"' for t in tokens))

    async def run(seconds: float) -> tuple[dict[str, Any], float]:
        command = [binary, f"-t{args.wrk_threads}", f"-c{args.concurrency}"]
        command += [f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), base]
        own = time.process_time()
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        async with asyncio.timeout(seconds + 30):
            out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        found = re.search(r"^WRKJSON (.*)$", text, re.M)
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
        return json.loads(found.group(1)), time.process_time() - own

    await run(args.warmup)
    cpu_before = _children_cpu()
    data, _ = await run(args.duration)
    wrk_cpu = _children_cpu() - cpu_before
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    wall = data["duration_us"] / 1e6
    return {
        "generator": f"wrk ({args.wrk_threads} thread(s)), Lua script picks random tokens",
        "concurrency": args.concurrency,
        "requests": data["requests"],
        "ok": data["requests"] - data["status"],
        "errors": errors,
        "statuses": {k: data[k] for k in ("connect", "read", "write", "status", "timeout")},
        "wall_s": round(wall, 3),
        "requests_per_s": round(data["requests"] / wall, 1),
        "p50_ms": round(data["p50"] / 1000, 2),
        "p90_ms": round(data["p90"] / 1000, 2),
        "p99_ms": round(data["p99"] / 1000, 2),
        "max_ms": round(data["max"] / 1000, 2),
        "mean_ms": round(data["mean"] / 1000, 2),
        "loadgen_cpu_s": round(wrk_cpu, 2),
    }


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


async def measure_json(
    app: AppProcess, seeded: Seeded, args: argparse.Namespace, tmp: Path, backend: str
) -> dict[str, Any]:
    # a sanity check first: a token answers 200 with the order out for delivery
    url = f"{app.base}/t/{seeded.tokens[0]}.json"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(url) as resp,
    ):
        sample = await resp.json()
        if resp.status != 200 or sample.get("status") != "out_for_delivery":
            raise SystemExit(f"unexpected answer {resp.status}: {sample}")
    out: dict[str, Any] = {"sample_bytes": len(json.dumps(sample))}
    generators = ["python", "wrk"] if args.generator == "both" else [args.generator]
    wrk = shutil.which("wrk")
    for generator in generators:
        if generator == "wrk" and not wrk:
            print("wrk is not installed (apt-get install -y wrk): skipped")
            continue
        spy_out = args.json.parent / f"web-pyspy-json-{generator}-{backend}.txt"
        before = cpu_seconds(app.proc.pid)
        spy = None
        if generator == "python":
            spy = await py_spy(args.py_spy, app.proc.pid, spy_out)
            r = await python_load(
                app.base, seeded.tokens, args.concurrency, args.warmup, args.duration
            )
        else:
            assert wrk is not None
            spy = await py_spy(args.py_spy, app.proc.pid, spy_out)
            r = await wrk_load(wrk, app.base, seeded.tokens, args, tmp)
        await stop_py_spy(spy)
        server = cpu_delta(before, cpu_seconds(app.proc.pid))
        # the server CPU includes the warm-up: per request over warm-up + measured time
        served = r["requests"] * (args.warmup + args.duration) / args.duration
        r["server_cpu_s"] = server
        r["server_cpu_ms_per_request"] = round(sum(server.values()) * 1000 / served, 3)
        r["meets_target"] = (
            r["errors"] == 0
            and r["requests_per_s"] >= TARGET_RATE
            and (r["p99_ms"] or 1e9) <= TARGET_P99_MS
        )
        if spy and spy_out.exists():
            r["py_spy_main_thread_shares"] = spy_shares(spy_out, SPY_FRAMES, "serve (bench/web.py)")
            r["py_spy_file"] = str(spy_out)
        out[generator] = r
        await asyncio.sleep(1.0)
    return out


# -- sse ----------------------------------------------------------------------------------------


@dataclass
class Stream:
    token: str
    arrivals: list[float] = field(default_factory=list)  # perf_counter of each data: event
    payloads: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def read_stream(http: aiohttp.ClientSession, base: str, stream: Stream) -> None:
    try:
        async with http.get(f"{base}/t/{stream.token}/events") as resp:
            if resp.status != 200:
                stream.error = f"HTTP {resp.status}"
                return
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    stream.arrivals.append(time.perf_counter())
                    stream.payloads.append(json.loads(line[5:]))
                    stream.arrived.set()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    finally:
        stream.arrived.set()


async def wait_all(streams: list[Stream], counts: list[int], bound_s: float) -> bool:
    """Until every stream has more than counts[i] events (or ended), at most `bound_s` s."""
    deadline = time.monotonic() + bound_s
    for stream, count in zip(streams, counts, strict=True):
        while len(stream.arrivals) <= count and stream.error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            stream.arrived.clear()
            if len(stream.arrivals) > count:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.arrived.wait(), left)
    return all(len(s.arrivals) > c or s.error for s, c in zip(streams, counts, strict=True))


async def measure_sse(
    app: AppProcess, url: str, seeded: Seeded, args: argparse.Namespace, backend: str
) -> dict[str, Any]:
    tokens = [t for t in seeded.sse_tokens for _ in range(args.sse_pages)]
    streams = [Stream(token) for token in tokens]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    db = Database(url)
    rounds: list[dict[str, Any]] = []
    spy_out = args.json.parent / f"web-pyspy-sse-{backend}.txt"
    spy = None
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            before = cpu_seconds(app.proc.pid)
            opened = time.perf_counter()
            readers = [asyncio.create_task(read_stream(http, app.base, s)) for s in streams]
            try:
                all_initial = await wait_all(streams, [0] * len(streams), args.sse_timeout)
                open_s = time.perf_counter() - opened
                open_cpu = cpu_delta(before, cpu_seconds(app.proc.pid))
                initial = sum(1 for s in streams if s.arrivals)
                errors = Counter(s.error for s in streams if s.error)
                first = [(s.arrivals[0] - opened) * 1000 for s in streams if s.arrivals]
                print(
                    f"{backend}: {initial}/{len(streams)} streams got their initial event in "
                    f"{open_s:.2f} s" + (f"; errors {dict(errors)}" if errors else "")
                )
                if not all_initial or initial < len(streams):
                    raise RuntimeError(f"only {initial}/{len(streams)} initial events")
                await asyncio.sleep(1.0)  # let the feed settle (nothing should arrive)
                spy = await py_spy(args.py_spy, app.proc.pid, spy_out)
                for r in range(args.rounds):
                    rounds.append(await sse_round(db, seeded, streams, app, args, r))
                    await asyncio.sleep(1.0)
                await stop_py_spy(spy)
            finally:
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
    finally:
        if spy is not None and spy.returncode is None:
            await stop_py_spy(spy)
        await db.dispose()
    p95s = [r["p95_ms"] for r in rounds]
    result: dict[str, Any] = {
        "streams": len(streams),
        "orders": len(seeded.sse_tokens),
        "pages_per_order": args.sse_pages,
        "drivers_written": 1,
        "open_all_s": round(open_s, 3),
        "initial_event_ms": ms_summary(first),
        "open_server_cpu_s": open_cpu,
        "rounds": rounds,
        "meets_target": all(r["received"] == len(streams) for r in rounds)
        and all(p is not None and p <= TARGET_SSE_P95_S * 1000 for p in p95s),
    }
    if spy and spy_out.exists():
        result["py_spy_main_thread_shares"] = spy_shares(
            spy_out, SPY_FRAMES, "serve (bench/web.py)"
        )
        result["py_spy_file"] = str(spy_out)
    return result


async def sse_round(
    db: Database,
    seeded: Seeded,
    streams: list[Stream],
    app: AppProcess,
    args: argparse.Namespace,
    index: int,
) -> dict[str, Any]:
    counts = [len(s.arrivals) for s in streams]
    lat = round(ORIGIN[0] + 0.001 * (index + 1), 6)
    lon = round(ORIGIN[1] + 0.001 * (index + 1), 6)
    cpu_before = cpu_seconds(app.proc.pid)
    started = time.perf_counter()
    await positions.record(
        db, seeded.sse_driver, positions.Fix(lat, lon, system_clock(), live=True)
    )
    committed = time.perf_counter()
    done = await wait_all(streams, counts, args.sse_timeout)
    cpu = cpu_delta(cpu_before, cpu_seconds(app.proc.pid))
    delays, stale = [], 0
    for stream, count in zip(streams, counts, strict=True):
        if len(stream.arrivals) > count:
            delays.append((stream.arrivals[count] - committed) * 1000)
            if stream.payloads[count].get("driver_at") != [lat, lon]:
                stale += 1
    ms = sorted(delays)
    row = {
        "round": index + 1,
        "write_ms": round((committed - started) * 1000, 2),
        "received": len(ms),
        "all_within_timeout": done,
        "with_new_position": len(ms) - stale,
        "p50_ms": round(percentile(ms, 50), 1) if ms else None,
        "p95_ms": round(percentile(ms, 95), 1) if ms else None,
        "p99_ms": round(percentile(ms, 99), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
        "min_ms": round(min(ms), 1) if ms else None,
        "server_cpu_s": cpu,
    }
    print(
        f"  round {index + 1}: {row['received']}/{len(streams)} received "
        f"({row['with_new_position']} with the new position), p50 {row['p50_ms']} ms, "
        f"p95 {row['p95_ms']} ms, max {row['max_ms']} ms"
    )
    return row


# -- one database ---------------------------------------------------------------------------------


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    seeded = await seed(url, args)
    print(
        f"{backend}: seeded {len(seeded.tokens)} + {len(seeded.sse_tokens)} orders in "
        f"{seeded.seconds:.1f} s"
    )
    out: dict[str, Any] = {"seed_s": round(seeded.seconds, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        app = AppProcess(url, Path(tmp), args)
        try:
            await app.wait_ready()
            if args.what in ("json", "all"):
                out["json"] = await measure_json(app, seeded, args, Path(tmp), backend)
            if args.what in ("sse", "all"):
                out["sse"] = await measure_sse(app, url, seeded, args, backend)
        finally:
            await app.stop()
        server_log = app.log_path.read_text(errors="replace")
        out["server_tracebacks"] = server_log.count("Traceback")
        if out["server_tracebacks"]:
            print(f"{backend}: the server log has tracebacks:\n{app.log_tail(40)}")
    return out


# -- output -------------------------------------------------------------------------------------


def print_json(results: dict[str, dict[str, Any]]) -> None:
    print(
        f"\nGET /t/{{token}}.json (target ≥ {TARGET_RATE:.0f} req/s, p99 ≤ {TARGET_P99_MS:.0f} ms)"
    )
    head = ["database", "generator", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms"]
    head += ["max ms", "srv ms/req", "gen cpu s", "target"]
    print(f"{head[0]:<10}{head[1]:<10}" + "".join(f"{h:>11}" for h in head[2:]))
    for name, r in results.items():
        for gen in ("python", "wrk"):
            if gen not in r.get("json", {}):
                continue
            g = r["json"][gen]
            cells = [g["requests"], g["errors"], g["requests_per_s"], g["p50_ms"], g["p90_ms"]]
            cells += [g["p99_ms"], g["max_ms"], g["server_cpu_ms_per_request"]]
            cells += [g["loadgen_cpu_s"], "met" if g["meets_target"] else "missed"]
            print(f"{name:<10}{gen:<10}" + "".join(f"{c!s:>11}" for c in cells))
    for name, r in results.items():
        for gen, g in r.get("json", {}).items():
            if not isinstance(g, dict):
                continue
            print(f"{name}/{gen}: server CPU by thread {g['server_cpu_s']}")
            for label, share in g.get("py_spy_main_thread_shares", {}).items():
                where = label if label.startswith("(") else f"of the busy main thread in {label}"
                print(f"  py-spy {share:6.1%} {where}")


def print_sse(results: dict[str, dict[str, Any]]) -> None:
    print(
        f"\nSSE /t/{{token}}/events: commit → next data: event (target p95 ≤ {TARGET_SSE_P95_S} s)"
    )
    head = ["database", "streams", "round", "write ms", "received", "new pos", "p50 ms"]
    head += ["p95 ms", "p99 ms", "max ms", "srv cpu s", "target"]
    print(f"{head[0]:<10}" + "".join(f"{h:>10}" for h in head[1:]))
    for name, r in results.items():
        s = r.get("sse")
        if not s:
            continue
        for row in s["rounds"]:
            ok = row["received"] == s["streams"] and (row["p95_ms"] or 1e9) <= 1000
            cells = [s["streams"], row["round"], row["write_ms"], row["received"]]
            cells += [row["with_new_position"], row["p50_ms"], row["p95_ms"], row["p99_ms"]]
            cells += [row["max_ms"]]
            cells += [round(sum(row["server_cpu_s"].values()), 2), "met" if ok else "missed"]
            print(f"{name:<10}" + "".join(f"{c!s:>10}" for c in cells))
        i = s["initial_event_ms"]
        print(
            f"{name}: {s['streams']} streams = {s['orders']} orders × {s['pages_per_order']} "
            f"pages, one driver; all opened in {s['open_all_s']} s (initial event p50 "
            f"{i['p50_ms']} ms, max {i['max_ms']} ms), server CPU {s['open_server_cpu_s']}"
        )
        for label, share in s.get("py_spy_main_thread_shares", {}).items():
            where = label if label.startswith("(") else f"of the busy main thread in {label}"
            print(f"  py-spy {share:6.1%} {where}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["json", "sse", "all", "serve"])
    parser.add_argument("--orders", type=int, default=200, help="orders of the JSON test")
    parser.add_argument("--drivers", type=int, default=20)
    parser.add_argument("--generator", choices=["python", "wrk", "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--sse-orders", type=int, default=50, help="orders of the SSE driver")
    parser.add_argument("--sse-pages", type=int, default=10, help="SSE streams per order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sse-timeout", type=float, default=30.0, help="bound of every wait")
    parser.add_argument("--postgres", help="PostgreSQL server URL to create a scratch database on")
    parser.add_argument("--skip-unreachable", action="store_true", help="skip PG if unreachable")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--py-spy", metavar="BIN", help="sample the app with this py-spy")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of one database (s)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/web.json"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.what == "serve":
        serve(args)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    async def bounded(url: str) -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await measure(url, args)

    results = asyncio.run(databases(args, bounded))
    failed = []
    keys = ["orders", "drivers", "generator", "concurrency", "wrk_threads", "warmup", "duration"]
    keys += ["sse_orders", "sse_pages", "rounds", "sse_timeout", "loop"]
    params = {k: getattr(args, k) for k in keys} | {
        "postgres": bool(args.postgres),
        "py_spy": bool(args.py_spy),
        "live_poll_s": 0.25,
    }
    suffix = "" if args.loop == "asyncio" else f"_{args.loop}"
    suffix += "_profiled" if args.py_spy else ""
    if args.what in ("json", "all"):
        print_json(results)
        json_results = {db: r["json"] for db, r in results.items() if "json" in r}
        write_json(args.json, f"json{suffix}", params, json_results)
        for db, r in json_results.items():
            failed += [f"{db}/{g}: {v['errors']} errors" for g, v in r.items() if _errors(v)]
    if args.what in ("sse", "all"):
        print_sse(results)
        sse_results = {db: r["sse"] for db, r in results.items() if "sse" in r}
        write_json(args.json, f"sse{suffix}", params, sse_results)
        for db, s in sse_results.items():
            missing = [r for r in s["rounds"] if r["received"] != s["streams"]]
            failed += [f"{db}: round {r['round']} reached {r['received']}" for r in missing]
    for db, r in results.items():
        if r["server_tracebacks"]:
            failed.append(f"{db}: {r['server_tracebacks']} tracebacks in the server log")
    if failed:
        raise SystemExit("FAILED: " + "; ".join(failed))


def _errors(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("errors"))


if __name__ == "__main__":
    main()
