"""Signed links to staff web views: single-purpose, bound to one person (and maybe one order),
expiring, revocable.

A link's token is `<id>.<expires>.<HMAC-SHA256>` over "<purpose>:<id>:<member>:<order>:<expires>"
with the instance's secret key (`APP_SECRET_KEY`, see `core.tracking.links.secret_key`); the
`web_links` row says what it is for and whether it was revoked. A token for another purpose, a
changed one, an expired one or a revoked one is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from core.db import Database
from core.errors import DomainError
from core.models import WebLink

TOKEN = re.compile(r"([0-9]{1,10})\.([0-9]{1,12})\.([0-9a-f]{64})")


class BadLink(DomainError):
    """Altered, made up, or for something else."""


class LinkExpired(DomainError):
    """Genuine but too old."""


class LinkRevoked(DomainError):
    """Genuine but withdrawn."""


def _signature(key: bytes, link: WebLink, expires: int) -> str:
    message = f"{link.purpose}:{link.id}:{link.member_id}:{link.order_id or 0}:{expires}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


async def issue(
    db: Database,
    key: bytes,
    purpose: str,
    member_id: int,
    now: datetime,
    ttl: timedelta,
    *,
    order_id: int | None = None,
    telegram_user_id: int | None = None,
) -> str:
    """A new link's token for `purpose`, bound to the member (and the order)."""
    expires = int((now + ttl).timestamp())
    link = WebLink(
        purpose=purpose,
        member_id=member_id,
        order_id=order_id,
        telegram_user_id=telegram_user_id,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    async with db.transaction() as session:
        session.add(link)
        await session.flush()
    return f"{link.id}.{expires}.{_signature(key, link, expires)}"


async def check(db: Database, key: bytes, token: str, purpose: str, now: datetime) -> WebLink:
    """The link behind `token`, if it is genuine, for `purpose`, current and not revoked."""
    match = TOKEN.fullmatch(token)
    if match is None:
        raise BadLink("link.bad")
    link_id, expires = int(match[1]), int(match[2])
    async with db.reads() as session:
        link = await session.get(WebLink, link_id)
    if link is None or link.purpose != purpose:
        raise BadLink("link.bad")
    wanted = _signature(key, link, expires)
    if not hmac.compare_digest(wanted, match[3]) or expires != int(link.expires_at.timestamp()):
        raise BadLink("link.bad")
    if link.revoked_at is not None:
        raise LinkRevoked("link.revoked")
    if now.timestamp() > expires:
        raise LinkExpired("link.expired")
    return link


async def revoke(
    db: Database, now: datetime, *, link_id: int | None = None, order_id: int | None = None
) -> int:
    """Withdraw one link, or every link to an order; how many were still standing."""
    async with db.transaction() as session:
        statement = select(WebLink).where(col(WebLink.revoked_at).is_(None))
        if link_id is not None:
            statement = statement.where(WebLink.id == link_id)
        if order_id is not None:
            statement = statement.where(WebLink.order_id == order_id)
        rows = (await session.exec(statement)).all()
        for link in rows:
            link.revoked_at = now
            session.add(link)
        return len(rows)
