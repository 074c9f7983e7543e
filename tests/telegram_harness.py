"""Lastmile running for real against the fake Bot API (and a fake Nominatim): the web app with
its Telegram channel under uvicorn on 127.0.0.1, updates arriving by webhook (or polling)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image
from sqlmodel import col, select

from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.models import Member, MemberRole, OutboxMessage, OutboxStatus, Placement, Role
from core.people.members import grant
from tests.conftest import free_port, serve
from tests.fakes import telegram_updates as tu
from tests.fakes.nominatim import FakeNominatim
from tests.fakes.telegram_api import Call, FakeTelegram

SECRET = "webhook-secret-123"
WAIT_S = 15.0


def jpeg(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass
class Bot:
    fake: FakeTelegram
    nominatim: FakeNominatim
    db: Database
    app: Any
    base_url: str
    settings: Settings

    async def send(self, update: dict[str, Any]) -> int:
        """Deliver one update by webhook; the handler has finished when this returns."""
        status = await self.fake.deliver_webhook(update)
        assert status == 200, status
        return status

    def texts(self, chat_id: int) -> list[str]:
        return [call.text or "" for call in self.fake.sent_to(chat_id)]

    def last(self, chat_id: int) -> Call:
        sent = self.fake.sent_to(chat_id)
        assert sent, f"nothing was sent to chat {chat_id}"
        return sent[-1]

    def buttons(self, call: Call) -> list[tuple[str, str]]:
        """(text, callback_data) of every inline button of a sent message."""
        markup = call.params.get("reply_markup") or {}
        rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    async def tap(self, person: dict[str, Any], chat_id: int, call: Call, label: str) -> None:
        """Press the button whose text contains `label` on message `call`."""
        data = [d for text, d in self.buttons(call) if label in text]
        assert data, f"no button {label!r} in {self.buttons(call)}"
        message_id = (call.result or {}).get("message_id", 1)
        await self.send(tu.callback(person, data[0], message_id=message_id, chat_id=chat_id))

    async def outbox_settled(self, wait_s: float = WAIT_S) -> list[OutboxMessage]:
        """Wait until the sender has dealt with every outbox row due on the service's clock;
        return all rows."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            async with self.db.sessions() as session:
                rows = list(
                    await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
                )
            busy = [
                r for r in rows
                if r.status is OutboxStatus.SENDING
                or (r.status is OutboxStatus.PENDING and r.next_attempt_at <= self.db.now())
            ]  # fmt: skip
            if not busy:
                return rows
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"outbox not drained: {[(r.id, r.status) for r in busy]}")
            await asyncio.sleep(0.05)

    async def placements_settled(self, wait_s: float = WAIT_S) -> list[OutboxMessage]:
        """Wait until the autopilot has dealt with every order waiting for a driver (placed it,
        parked it with its alert queued, or put it off to a later time), then until the outbox
        is settled; return the outbox's rows."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            async with self.db.sessions() as session:
                rows = list(await session.exec(select(Placement)))
            now = self.db.now()
            busy = [
                r.order_id for r in rows
                if r.lease_token is not None
                or not (r.parked or (r.due_at is not None and r.due_at > now))
            ]  # fmt: skip
            if not busy:
                return await self.outbox_settled(wait_s)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"orders still being placed: {busy}")
            await asyncio.sleep(0.05)


async def add_person(
    db: Database, telegram_id: int, name: str, roles: list[Role]
) -> tuple[dict[str, Any], Member]:
    """A member who has opened the chat already (chat id = user id), and their Telegram user."""
    async with db.transaction() as session:
        member = Member(
            name=name, telegram_user_id=telegram_id, telegram_chat_id=telegram_id, language="en"
        )
        session.add(member)
        await session.flush()
        for role in roles:
            await grant(session, member, role)
    return tu.user(telegram_id, name.split()[0], last_name=None), member


async def roles_of(db: Database, telegram_id: int) -> set[Role]:
    async with db.sessions() as session:
        statement = (
            select(MemberRole.role)
            .join(Member, col(Member.id) == MemberRole.member_id)
            .where(Member.telegram_user_id == telegram_id)
        )
        return set(await session.exec(statement))


def quiet_report_time(now: datetime, timezone: str) -> time:
    """A local time of day twelve hours away from `now`: the daily and weekly report jobs (due
    from that time to 4 h after, run at start when missed) neither run at a test's start nor
    during it. With the default 20:00 a test started in the evening, or on a Monday evening,
    got a report pushed to its owner between its own messages."""
    return (now.astimezone(ZoneInfo(timezone)) + timedelta(hours=12)).time().replace(microsecond=0)


@asynccontextmanager
async def running_bot(
    db: Database,
    tmp_path: Path,
    *,
    mode: str = "webhook",
    clock: Callable[[], datetime] = system_clock,
    telegram: dict[str, Any] | None = None,
    tracking: dict[str, Any] | None = None,
    redis_url: str | None = None,
    dispatch: dict[str, Any] | None = None,
    app: dict[str, Any] | None = None,
    reports: dict[str, Any] | None = None,
    sandbox: bool = False,
    whatsapp: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
) -> AsyncIterator[Bot]:
    from web.app import create_app

    if reports is None:  # the owners' report pushes never fall due while a test runs
        reports = {"daily_at": quiet_report_time(clock(), (app or {}).get("timezone", "UTC"))}
    nominatim = FakeNominatim()
    async with FakeTelegram() as fake, serve(nominatim.app) as nominatim_url:
        nominatim.url = nominatim_url
        port = free_port()
        settings = Settings(
            app={
                "base_url": f"http://127.0.0.1:{port}",
                "data_dir": tmp_path,
                "timezone": "UTC",
                **(app or {}),
            },
            telegram={
                "bot_token": fake.token,
                "bot_username": "lastmile_test_bot",
                "api_url": fake.url,
                "mode": mode,
                "webhook_secret": SECRET,
                "chat_rate_per_s": 100,
                "rate_per_s": 1000,
                **(telegram or {}),
            },
            geocoding={"url": nominatim_url, "min_interval_s": 0},
            tracking=tracking or {},
            dispatch=dispatch or {},
            reports=reports,
            redis={"url": redis_url},
            sandbox=sandbox,
            whatsapp=whatsapp or {},
            storage=storage or {},
            _env_file=None,  # type: ignore[call-arg]
        )
        web_app = create_app(settings, db, clock=clock)
        async with serve(web_app, port=port) as base_url:
            yield Bot(fake, nominatim, db, web_app, base_url, settings)
