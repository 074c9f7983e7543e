"""Helpers for WhatsApp tests: people on WhatsApp, a sender against the fake Graph API, and a
small receiver of the fake's signed status webhooks that hands each status to `apply_status`
(the part of the real webhook route that statuses go through)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import col, select

from bot.whatsapp.client import GraphClient
from bot.whatsapp.sender import WhatsAppSender, apply_status
from core.bootstrap import Services
from core.config import Settings
from core.db import Database
from core.models import Channel, ChatIdentity, Member, OutboxMessage, SentMessage
from core.notify import outbox
from core.notify.rules import Notice
from core.people.identities import ChatRef, attach
from tests.fakes.graph_api import FakeGraph

WAIT_S = 30


async def whatsapp_member(
    db: Database,
    wa_id: str,
    name: str = "Kim",
    *,
    wrote_ago: timedelta | None,
    language: str = "en",
) -> Member:
    """A member whose WhatsApp chat is `wa_id`; she last wrote `wrote_ago` (None: never)."""
    async with db.transaction() as session:
        member = Member(name=name, language=language)
        session.add(member)
        await session.flush()
        assert member.id is not None
        await attach(session, member.id, ChatRef(Channel.WHATSAPP, wa_id, wa_id))
        identity = (
            await session.exec(select(ChatIdentity).where(ChatIdentity.external_id == wa_id))
        ).one()
        identity.last_inbound_at = db.now() - wrote_ago if wrote_ago is not None else None
        session.add(identity)
    return member


async def notify(
    db: Database,
    member: Member,
    key: str,
    template: str = "driver.share_location_again",
    params: dict[str, Any] | None = None,
    actions: tuple[dict[str, Any], ...] = (),
) -> int:
    assert member.id is not None
    async with db.transaction() as session:
        row = await outbox.add(session, Notice(member.id, template, params or {}, actions), key)
        assert row is not None and row.id is not None
        return row.id


def make_sender(
    fake: FakeGraph,
    db: Database,
    tmp_path: Path,
    *,
    lease_s: float = 60,
    redis_url: str | None = None,
    **whatsapp: Any,
) -> WhatsAppSender:
    settings = Settings(
        app={"data_dir": tmp_path},
        whatsapp={
            "access_token": fake.token,
            "phone_number_id": fake.phone_number_id,
            "app_secret": fake.app_secret,
            "api_url": fake.url,
            "api_version": fake.version,
            **whatsapp,
        },
        outbox={"lease_s": lease_s},
        redis={"url": redis_url},
        webhooks={"timeout_s": min(10.0, lease_s / 2)},
        _env_file=None,  # type: ignore[call-arg]
    )
    return WhatsAppSender(Services.build(settings, db), GraphClient(settings.whatsapp))


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list(await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


async def sent_messages(db: Database) -> list[SentMessage]:
    async with db.sessions() as session:
        return list(await session.exec(select(SentMessage).order_by(col(SentMessage.id))))


async def until(check: Any, what: str) -> None:
    """Wait (WAIT_S at most) until `await check()` is true."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await check():
        assert loop.time() - started < WAIT_S, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(sender: WhatsAppSender) -> AsyncIterator[WhatsAppSender]:
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        await sender.client.aclose()


@asynccontextmanager
async def status_receiver(db: Database, fake: FakeGraph) -> AsyncIterator[list[bool]]:
    """Receive the fake's status webhooks (signature checked) into `apply_status`; yields what
    each call returned (known message or not)."""
    applied: list[bool] = []

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(fake.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=401)
        body = await request.json()
        for entry in body.get("entry", []):
            for change in entry.get("changes", []):
                for status in change.get("value", {}).get("statuses", []):
                    error = (status.get("errors") or [{}])[0]
                    at = datetime.fromtimestamp(int(status["timestamp"]), UTC)
                    applied.append(
                        await apply_status(
                            db,
                            status["id"],
                            status["status"],
                            at,
                            error.get("code"),
                            error.get("title"),
                        )
                    )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    fake.webhook_url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/whatsapp"
    try:
        yield applied
    finally:
        await fake.settle()
        await runner.cleanup()
