"""WhatsApp inbound: signed webhook bodies posted to the real app, stored and answered 200, then
processed by the channel's worker (the core answers each text through the fake Graph API).

    python -m bench.whatsapp_inbound [--bodies 3000] [--people 100] [--concurrency 8]
                                     [--postgres URL [--skip-unreachable]] [--no-sqlite]

Measures, per database: the time to the 200 (p50/p99/max) and bodies answered per second, and
the bodies processed per second from the first post until every reply was sent; then checks that
nothing was lost or doubled (each message answered once, each marked read once). The service
runs alone in its own process (uvicorn, its lifespan run: the WhatsApp worker and sender), as in
production; Meta's side (the posting clients and the fake Graph API) runs in this one, so the two
share the machine's cores. Prints a table and merges the results into
bench/results/whatsapp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from sqlmodel import func, select

from bench.common import databases, free_port, percentile, write_json
from core.config import Settings
from core.db import Database
from core.migrations import upgrade
from core.models import InboundBody, OutboxStatus
from tests.fakes.graph_api import FakeGraph, sign
from tests.test_whatsapp_webhook import graph_settings
from web.app import create_app

RESULTS = Path(__file__).parent / "results" / "whatsapp.json"


def bodies(fake: FakeGraph, count: int, people: int) -> list[tuple[str, bytes]]:
    out = []
    for n in range(count):
        wa_id = str(4915100000000 + n % people)
        message = {
            "from": wa_id,
            "id": f"wamid.bench.{n}",
            "timestamp": str(int(fake.clock().timestamp())),
            "type": "text",
            "text": {"body": f"hello {n}"},
        }
        contacts = [{"profile": {"name": f"Person {n % people}"}, "wa_id": wa_id}]
        body = fake._envelope({"contacts": contacts, "messages": [message]})
        out.append((wa_id, json.dumps(body, separators=(",", ":")).encode()))
    return out


async def processed(db: Database) -> int:
    async with db.reads() as session:
        query = select(func.count()).where(InboundBody.status == OutboxStatus.SENT)
        return int((await session.exec(query)).one())


def serve(url: str, values: dict[str, Any], port: int) -> None:
    """The service alone in its own process (the child of `run`)."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(**values, _env_file=None)  # type: ignore[call-arg]
    uvicorn.run(
        create_app(settings, Database(url)), host="127.0.0.1", port=port, log_level="warning"
    )


async def until_up(port: int) -> None:
    """Wait (bounded) until the service in its own process answers."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError("the service did not start within 30 s")


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url)
    async with FakeGraph() as fake:
        fake.auto_statuses = ()
        values = {
            "app": {"data_dir": Path(args.data_dir), "secret_key": "k" * 32},
            "dispatch": {"mode": "manual"},
            "whatsapp": graph_settings(fake),
        }
        port = free_port()
        service = multiprocessing.get_context("spawn").Process(
            target=serve, args=(url, values, port), daemon=True
        )
        service.start()
        await until_up(port)
        todo = bodies(fake, args.bodies, args.people)
        for wa_id, _ in todo:
            fake.wrote(wa_id)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)
        target = f"http://127.0.0.1:{port}/webhooks/whatsapp"

        async def client() -> None:
            async with aiohttp.ClientSession() as http:
                while not queue.empty():
                    _, body = queue.get_nowait()
                    headers = {
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign(body, fake.app_secret),
                    }
                    started = time.perf_counter()
                    async with http.post(target, data=body, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1
                    latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        posted = time.perf_counter() - began
        deadline = time.monotonic() + args.timeout
        for _ in range(int(args.timeout * 10)):  # bounded: until all were processed and read
            if time.monotonic() > deadline:
                break
            if len(fake.reads) >= args.bodies and await processed(db) >= args.bodies:
                break
            await asyncio.sleep(0.1)
        total = time.perf_counter() - began
        done = await processed(db)
        service.terminate()  # SIGTERM: uvicorn's graceful stop
        service.join(30)
    await db.dispose()
    replies = Counter(s.to for s in fake.sent if s.ok)
    reads = Counter(fake.reads)
    return {
        "bodies": args.bodies,
        "answered_200": statuses.get(200, 0),
        "other_statuses": {str(k): v for k, v in statuses.items() if k != 200},
        "post_per_s": round(args.bodies / posted, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "processed": done,
        "processed_per_s": round(done / total, 1),
        "replies": sum(replies.values()),
        "lost": args.bodies - len(reads),
        "read_twice": sum(1 for n in reads.values() if n > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bodies", type=int, default=3000)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--postgres")
    parser.add_argument("--skip-unreachable", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    async def work(url: str) -> dict[str, Any]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            args.data_dir = tmp
            return await run(url, args)

    results = asyncio.run(databases(args, work))
    columns = ["post_per_s", "p50_ms", "p99_ms", "max_ms", "processed_per_s", "lost", "read_twice"]
    print(f"{'database':10}" + "".join(f"{c:>16}" for c in columns))
    for name, row in results.items():
        print(f"{name:10}" + "".join(f"{row[c]!s:>16}" for c in columns))
    params = {k: getattr(args, k) for k in ("bodies", "people", "concurrency")}
    write_json(RESULTS, "inbound", params, results)


if __name__ == "__main__":
    main()
