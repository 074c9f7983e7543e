"""Helpers the benchmarks share: fresh databases, ports, CPU time, percentiles, JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import socket
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from core.config import normalize_database_url


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user+system) of each thread of `pid`, by thread name, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            text = (task / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out["main" if task.name == str(pid) else name] += (
                int(fields[11]) + int(fields[12])
            ) / tick
    return dict(out)


async def scratch_postgres(base: str, work: Callable[[str], Awaitable[Any]]) -> Any:
    name = f"lastmile_bench_{secrets.token_hex(4)}"
    dsn = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            return await work(url)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def postgres_reachable(base: str) -> str | None:
    """None when the server answers; otherwise why not."""
    dsn = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def databases(args: argparse.Namespace, work: Callable[[str], Awaitable[Any]]) -> dict:
    """Run `work(url)` on a fresh SQLite file and/or a scratch PostgreSQL database."""
    results: dict[str, Any] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = await work(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
    if args.postgres:
        base = normalize_database_url(args.postgres)
        why = await postgres_reachable(base)
        if why is not None and args.skip_unreachable:
            print(f"PostgreSQL at {args.postgres} is unreachable ({why}): skipped")
        elif why is not None:
            raise SystemExit(f"PostgreSQL at {args.postgres} is unreachable: {why}")
        else:
            results["postgres"] = await scratch_postgres(base, work)
    return results


def write_json(path: Path, section: str, params: dict[str, Any], results: dict) -> None:
    """Merge this run into `path` (other sections are kept)."""
    data: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(path.read_text())
    data["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
    }
    data[section] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": params,
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    print(f"wrote {path} ({section})")


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def spy_shares(path: Path, frames: dict[str, str], process: str) -> dict[str, float]:
    """From a py-spy collapsed profile: the share of the app's busy main-thread samples whose
    stack holds each frame of `frames` (label → frame text), and the share of all its samples
    spent idle in the event loop's wait. `process` marks the main thread's stacks (its entry
    frame, like "serve (bench/web.py)"); other threads (aiosqlite's, the pool's) are left out."""
    counts = Counter[str]()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if process not in stack:
            continue
        if stack.endswith("select (selectors.py)"):
            idle += int(count)
            continue
        total += int(count)
        for label, frame in frames.items():
            if frame in stack:
                counts[label] += int(count)
    if not total:
        return {}
    shares = {label: round(counts[label] / total, 3) for label in frames}
    return shares | {"(idle in epoll, share of all samples)": round(idle / (idle + total), 3)}
