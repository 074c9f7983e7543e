"""What the merchant webhook tests share: a receiver the test runs on 127.0.0.1 (a Starlette app
under uvicorn), the Lastmile app under uvicorn with a clock the test moves (real time plus an
offset, so retries come due without waiting for them), and merchants who set their webhook up
and read the delivery log through the REST API with httpx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from core.clock import system_clock
from core.config import Settings, WebhooksSettings
from core.db import Database
from core.merchants import apikeys, deliveries
from core.merchants.sender import WebhookSender
from core.models import ApiKey, OrderEvent, OrderStatus
from core.models import WebhookDelivery as Delivery
from tests.conftest import serve
from web.app import create_app

S = OrderStatus
T = TypeVar("T")
BASE = "https://deliver.example.com"
TIMEOUT_S = 0.5  # WEBHOOKS_TIMEOUT_S in these tests: a receiver that "hangs" is given up on
HANG_S = 1.5
WAIT_S = 10.0  # the most any wait for the sender may take (it looks for work every second)
POLL_S = 0.05
LOOPBACK = WebhooksSettings(allow_private=True)  # the receivers here listen on 127.0.0.1
ORDER: dict[str, Any] = {
    "customer_name": "Ana Lima",
    "customer_phone": "+4915112345678",
    "address": "Hauptstr. 5, Berlin",
    "lat": 52.52,
    "lon": 13.40,
    "time_windows": [{"start": "2026-11-24T09:00:00+01:00", "end": "2026-11-24T12:00:00+01:00"}],
    "proof_required": "none",
}


class Clock:
    """The app's clock: real time plus an offset that the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return system_clock() + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


@dataclass
class Hit:
    """One request as the receiver got it: the raw body bytes and the headers."""

    path: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def signature(self) -> str:
        return self.headers["lastmile-signature"]

    @property
    def delivery(self) -> int:
        return int(self.headers["lastmile-delivery"])


class Receiver:
    """A merchant's endpoint, `POST /hook/<name>`: records every request and answers from
    `script` (an HTTP status, or "hang": answer only after the sender has given up), then with
    `default`."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: list[int | str] = []
        self.default = 200
        self.content: bytes | None = None  # the answer's body; "receiver says <status>" if None
        self.app = Starlette(routes=[Route("/hook/{name}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.hits.append(Hit(request.url.path, body, dict(request.headers)))
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await asyncio.sleep(HANG_S)
            answer = 200
        assert isinstance(answer, int)
        if self.content is not None:
            return Response(self.content, answer, media_type="application/octet-stream")
        return PlainTextResponse(f"receiver says {answer}", status_code=answer)

    def at(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]


async def until(what: str, probe: Callable[[], Awaitable[T | None]], seconds: float = WAIT_S) -> T:
    """Poll `probe` until it returns something, every 50 ms, for at most `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for _ in range(int(seconds / POLL_S)):
        result = await probe()
        if result is not None:
            return result
        if loop.time() > deadline:
            break
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"gave up after {seconds} s waiting for {what}")


@dataclass(eq=False)
class Merchant:
    """An API key, an httpx client that sends it, and the receiver path its webhook uses."""

    key: ApiKey
    api: httpx.AsyncClient
    url: str
    secret: str | None = None

    @property
    def path(self) -> str:
        return httpx.URL(self.url).path

    async def listen(self, *, all_orders: bool = False) -> dict[str, Any]:
        response = await self.api.put("/webhook", json={"url": self.url, "all_orders": all_orders})
        assert response.status_code == 200, response.text
        self.secret = response.json()["secret"]
        return response.json()

    async def order(self, ref: str, **changes: Any) -> dict[str, Any]:
        response = await self.api.post("/orders", json={**ORDER, "external_ref": ref, **changes})
        assert response.status_code == 201, response.text
        return response.json()

    async def log(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get("/webhook/deliveries", params=params)
        assert response.status_code == 200, response.text
        return response.json()["deliveries"]

    async def log_when(
        self, what: str, ready: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        async def probe() -> list[list[dict[str, Any]]] | None:
            log = await self.log()
            return [log] if ready(log) else None

        return (await until(what, probe))[0]


@dataclass
class Stack:
    db: Database
    base: str
    hook: str
    receiver: Receiver
    clock: Clock
    settings: Settings
    exits: AsyncExitStack

    async def merchant(self, name: str, url: str | None = None) -> Merchant:
        key, secret = await apikeys.create_key(self.db, name)
        client = httpx.AsyncClient(
            base_url=f"{self.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
        )
        await self.exits.enter_async_context(client)
        return Merchant(key, client, url or f"{self.hook}/hook/{name}")

    async def hits(self, path: str, n: int) -> list[Hit]:
        """Wait until the receiver got at least `n` requests at `path`; all of them."""

        async def probe() -> list[Hit] | None:
            got = self.receiver.at(path)
            return got if len(got) >= n else None

        return await until(f"{n} requests at {path}", probe)

    async def nothing_due(self) -> bool:
        """Whether a sender of our own, on the app's clock, finds nothing to send."""
        sender = WebhookSender(self.db, self.settings.webhooks, clock=self.clock)
        try:
            return not await sender.drain_once()
        finally:
            await sender.stop()


@asynccontextmanager
async def running(db: Database, data_dir: Path, **webhook_settings: Any) -> AsyncIterator[Stack]:
    """The receiver and the app, each under uvicorn on 127.0.0.1."""
    clock = Clock()
    settings = Settings(
        app={"base_url": BASE, "data_dir": data_dir},
        webhooks={"timeout_s": TIMEOUT_S, "allow_private": True, **webhook_settings},
        _env_file=None,  # type: ignore[call-arg]
    )
    receiver = Receiver()
    async with AsyncExitStack() as exits:
        hook = await exits.enter_async_context(serve(receiver.app))
        base = await exits.enter_async_context(serve(create_app(settings, db, clock=clock)))
        yield Stack(db, base, hook, receiver, clock, settings, exits)


@pytest.fixture
async def stack(db: Database, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running(db, tmp_path) as value:
        yield value


def expected_signature(secret: str, body: bytes) -> str:
    """The signature a receiver computes, written out here rather than taken from the code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signed(hit: Hit, secret: str) -> None:
    assert hit.signature == expected_signature(secret, hit.body)
    assert deliveries.verify(secret, hit.body, hit.signature)
    assert not deliveries.verify(secret, hit.body + b" ", hit.signature)
    assert not deliveries.verify(secret + "x", hit.body, hit.signature)
    assert not deliveries.verify(secret, hit.body, None)


async def events_of(db: Database, order_id: int) -> list[OrderEvent]:
    async with db.reads() as session:
        statement = select(OrderEvent).where(OrderEvent.order_id == order_id)
        return list(await session.exec(statement.order_by(col(OrderEvent.id))))


async def rows(db: Database, *where: Any) -> list[Delivery]:
    async with db.reads() as session:
        statement = select(Delivery).where(*where).order_by(col(Delivery.id))
        return list(await session.exec(statement))


def sent(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda log: len(log) == n and all(d["status"] == "sent" for d in log)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def query_errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in e["loc"][1:]): e["msg"] for e in response.json()["detail"]}
