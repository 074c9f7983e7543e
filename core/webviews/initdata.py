"""Telegram Mini App `initData`, checked as Telegram documents it: the data-check string (every
field but `hash`, sorted, `key=value` joined by newlines) signed with HMAC-SHA256 under the key
HMAC-SHA256("WebAppData", bot token); `auth_date` no older than a set age (nor from the future);
and each initData acted on at most once (`use_once`), so a copied one cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import sqlalchemy as sa
import sqlalchemy.exc
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import DomainError
from core.models import InitDataUse

MAX_LENGTH = 4096
CLOCK_SKEW = timedelta(minutes=2)


class BadInitData(DomainError):
    """Not signed by our bot, or changed since."""


class InitDataExpired(DomainError):
    """Signed, but too long ago."""


class InitDataReplayed(DomainError):
    """Signed and current, but already acted on once."""


@dataclass(frozen=True)
class InitData:
    user_id: int
    first_name: str
    auth_date: datetime
    hash: str
    max_age: timedelta  # the age it was checked against


def secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def check(raw: str, bot_token: str, now: datetime, max_age: timedelta) -> InitData:
    """The verified initData, or `BadInitData` / `InitDataExpired`."""
    if not raw or len(raw) > MAX_LENGTH:
        raise BadInitData("webapp.bad")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise BadInitData("webapp.bad") from None
    fields = dict(pairs)
    received = fields.pop("hash", "")
    if len(fields) + 1 != len(pairs):  # a field given twice
        raise BadInitData("webapp.bad")
    data_check = "\n".join(f"{name}={fields[name]}" for name in sorted(fields))
    wanted = hmac.new(secret(bot_token), data_check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(wanted, received.lower()):
        raise BadInitData("webapp.bad")
    try:
        signed_at = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user = json.loads(fields["user"])
        user_id, first_name = int(user["id"]), str(user.get("first_name", ""))
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        raise BadInitData("webapp.bad") from None
    if signed_at > now + CLOCK_SKEW:
        raise BadInitData("webapp.bad")
    if now - signed_at > max_age:
        raise InitDataExpired("webapp.expired")
    return InitData(user_id, first_name, signed_at, wanted, max_age)


async def use_once(session: AsyncSession, data: InitData, now: datetime) -> None:
    """Record that `data` was acted on, in the caller's transaction; `InitDataReplayed` if it
    already was (then the caller's transaction must roll back). Records older than the age
    checked are dropped: initData that old is refused by its age anyway."""
    forgotten = col(InitDataUse.used_at) < now - data.max_age - CLOCK_SKEW
    await session.exec(sa.delete(InitDataUse).where(forgotten))
    if await session.get(InitDataUse, data.hash) is not None:
        raise InitDataReplayed("webapp.replayed")
    session.add(InitDataUse(hash=data.hash, used_at=now))
    try:
        await session.flush()
    except sqlalchemy.exc.IntegrityError:
        raise InitDataReplayed("webapp.replayed") from None
