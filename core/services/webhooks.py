"""Merchant webhooks: each API key may name a URL that receives its orders' status changes.

A delivery row is written with the change, in the same transaction (like the chat outbox), and
its JSON body is fixed then: every retry sends the same bytes. Each request carries

    Lastmile-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook secret>
    Lastmile-Event: order.status_changed          Lastmile-Delivery: <delivery id>

A receiver recomputes the HMAC over the bytes it received and compares in constant time
(`verify`). Failed deliveries are retried with backoff until `retry_until` (a day by default),
and every attempt is logged in `webhook_attempts`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.errors import DomainError, NotFound
from core.models import (
    ApiKey,
    Order,
    OrderEvent,
    OutboxStatus,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)

SIGNATURE_HEADER = "Lastmile-Signature"
EVENT_HEADER = "Lastmile-Event"
DELIVERY_HEADER = "Lastmile-Delivery"
EVENT_TYPES = {
    "created": "order.created",
    "status_changed": "order.status_changed",
    "status_undone": "order.status_undone",
}
LEASE = timedelta(seconds=60)
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600
MAX_URL = 2000


@dataclass
class Policy:
    """Set once at startup (`core.services.hub`): how long to retry, and the tracking links'
    base URL for the payloads."""

    retry_for: timedelta = timedelta(hours=24)
    base_url: str = "http://127.0.0.1:8000"


POLICY = Policy()


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(secret: str, body: bytes) -> str:
    """The `Lastmile-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature or "")


def check_url(url: str, *, require_https: bool = True) -> str:
    """A URL we may POST to, or `DomainError` saying what is wrong with it."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise DomainError("webhook.url_length", limit=MAX_URL)
    if any(char.isspace() or not char.isprintable() for char in url):
        raise DomainError("webhook.url_form")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not 0–65535)
        httpx.URL(url)  # what the sender will make of it
    except (ValueError, httpx.InvalidURL):
        raise DomainError("webhook.url_form") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError("webhook.url_form")
    if parts.scheme == "http" and require_https and not _loopback(parts.hostname):
        raise DomainError("webhook.url_https")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def set_url(
    db: Database, key_id: int, url: str | None, *, all_orders: bool = False, require_https: bool
) -> ApiKey:
    """Point key `key_id`'s webhook at `url` (a secret is made the first time), or switch it off
    with None; switching off skips what was still waiting to be delivered."""
    url = check_url(url, require_https=require_https) if url is not None else None
    async with db.transaction() as session:
        key = await session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.revoked_at is not None:
            raise NotFound("api.key_not_found", prefix=str(key_id))
        key.webhook_url = url
        key.webhook_all_orders = all_orders if url else False
        if url and not key.webhook_secret:
            key.webhook_secret = new_secret()
        session.add(key)
        if url is None:
            await session.exec(
                sa.update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.api_key_id) == key_id,
                    col(WebhookDelivery.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                )
                .values(status=OutboxStatus.SKIPPED, last_error="the webhook was switched off")
            )
    return key


async def rotate_secret(db: Database, key_id: int) -> ApiKey:
    """A new signing secret; the old one stops at once."""
    async with db.transaction() as session:
        key = await session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.revoked_at is not None:
            raise NotFound("api.key_not_found", prefix=str(key_id))
        key.webhook_secret = new_secret()
        session.add(key)
    return key


def payload(order: Order, event: OrderEvent, event_type: str) -> str:
    """The body sent for `event`: compact JSON, keys sorted."""
    data = event.data or {}
    document = {
        "id": f"evt_{event.id}",
        "type": event_type,
        "created_at": event.created_at.isoformat(),
        "data": {
            "order_id": order.id,
            "external_ref": order.external_ref,
            "status": str(event.to_status) if event.to_status else str(order.status),
            "previous_status": str(event.from_status) if event.from_status else None,
            "attempt": order.attempts,
            "driver_id": order.driver_id,
            "reason": data.get("reason"),
            "tracking_url": f"{POLICY.base_url.rstrip('/')}/t/{order.tracking_token}",
        },
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


async def enqueue(session: AsyncSession, order: Order, event: OrderEvent) -> None:
    """One delivery per listening key for a status change, in the caller's transaction."""
    event_type = EVENT_TYPES.get(event.kind)
    if event_type is None or event.to_status is None:
        return
    listening = select(ApiKey.id).where(
        col(ApiKey.webhook_url).is_not(None),
        col(ApiKey.revoked_at).is_(None),
        sa.or_(col(ApiKey.id) == order.api_key_id, col(ApiKey.webhook_all_orders)),
    )
    key_ids = list(await session.exec(listening))
    if not key_ids:
        return
    assert order.id is not None and event.id is not None
    body = payload(order, event, event_type)
    for key_id in key_ids:
        session.add(
            WebhookDelivery(
                api_key_id=key_id,
                order_id=order.id,
                event_id=event.id,
                event_type=event_type,
                body=body,
                next_attempt_at=event.created_at,
                retry_until=event.created_at + POLICY.retry_for,
                created_at=event.created_at,
            )
        )


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to a sender, with where to send it and the secret to sign it with."""

    id: int
    url: str
    secret: str
    event_type: str
    body: str


async def claim(db: Database, *, limit: int = 20, now: datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest first (several senders may run at once)."""
    now = now or utcnow()
    statement = (
        select(WebhookDelivery, ApiKey)
        .join(ApiKey, col(ApiKey.id) == WebhookDelivery.api_key_id)
        .where(
            col(WebhookDelivery.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
            col(WebhookDelivery.next_attempt_at) <= now,
        )
        .order_by(col(WebhookDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)  # type: ignore[arg-type]
    )
    claimed = []
    async with db.transaction() as session:
        for delivery, key in (await session.exec(statement)).all():
            assert delivery.id is not None
            if not key.webhook_url or not key.webhook_secret or key.revoked_at is not None:
                delivery.status = OutboxStatus.SKIPPED
                delivery.last_error = "the API key was revoked or its webhook switched off"
            else:
                delivery.status = OutboxStatus.SENDING
                delivery.attempts += 1
                delivery.next_attempt_at = now + LEASE
                claimed.append(
                    Claimed(
                        delivery.id,
                        key.webhook_url,
                        key.webhook_secret,
                        delivery.event_type,
                        delivery.body,
                    )
                )
            session.add(delivery)
    return claimed


@dataclass(frozen=True)
class Outcome:
    """What one attempt got back: an HTTP status, or the error that prevented one."""

    url: str
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _storable(text: str | None, limit: int) -> str | None:
    """Text any database keeps (PostgreSQL refuses NUL characters), at most `limit` long."""
    return text.replace("\x00", "\ufffd")[:limit] if text else None


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour between tries, with ±10 % jitter."""
    seconds = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


async def record(
    db: Database, delivery_id: int, outcome: Outcome, *, now: datetime | None = None
) -> OutboxStatus:
    """Log the attempt, then mark the delivery sent, due again later, or dead after its day."""
    now = now or utcnow()
    async with db.transaction() as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return OutboxStatus.DEAD
        error = _storable(outcome.error, 1000)
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
                attempted_at=now,
                url=outcome.url[:MAX_URL],
                status_code=outcome.status_code,
                error=error,
                response_excerpt=_storable(outcome.response_excerpt, 500),
                duration_ms=outcome.duration_ms,
            )
        )
        if delivery.status is not OutboxStatus.SENDING:
            return delivery.status  # switched off meanwhile: keep that
        delivery.last_status_code = outcome.status_code
        delivery.last_error = error
        if outcome.ok:
            delivery.status = OutboxStatus.SENT
            delivery.delivered_at = now
        elif now >= delivery.retry_until:
            delivery.status = OutboxStatus.DEAD
        else:
            delivery.status = OutboxStatus.PENDING
            delivery.next_attempt_at = min(now + backoff(delivery.attempts), delivery.retry_until)
        session.add(delivery)
        return delivery.status


async def release(
    db: Database, delivery_ids: Sequence[int], *, now: datetime | None = None
) -> None:
    """Give back leased deliveries that were not tried (a sender stopping), due at once."""
    if not delivery_ids:
        return
    async with db.transaction() as session:
        await session.exec(
            sa.update(WebhookDelivery)
            .where(
                col(WebhookDelivery.id).in_(delivery_ids),
                col(WebhookDelivery.status) == OutboxStatus.SENDING,
            )
            .values(
                status=OutboxStatus.PENDING,
                attempts=WebhookDelivery.attempts - 1,
                next_attempt_at=now or utcnow(),
            )
        )


async def redeliver(
    db: Database, key_id: int, delivery_id: int, *, now: datetime | None = None
) -> None:
    """Try one of this key's deliveries once more, now (also one that gave up)."""
    now = now or utcnow()
    async with db.transaction() as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.api_key_id != key_id:
            raise NotFound("webhook.delivery_not_found", delivery=delivery_id)
        if delivery.status is OutboxStatus.SENDING and delivery.next_attempt_at > now:
            raise DomainError("webhook.delivery_busy", delivery=delivery_id)
        delivery.status = OutboxStatus.PENDING
        delivery.next_attempt_at = now
        delivery.retry_until = max(delivery.retry_until, now)
        session.add(delivery)


@dataclass
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt] = field(default_factory=list)


async def deliveries(
    db: Database,
    key_id: int,
    *,
    status: OutboxStatus | None = None,
    order_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[DeliveryLog], int | None]:
    """This key's deliveries, newest first, each with its attempts (oldest first), and the id
    to continue before (None on the last page)."""
    statement = select(WebhookDelivery).where(WebhookDelivery.api_key_id == key_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if order_id is not None:
        statement = statement.where(WebhookDelivery.order_id == order_id)
    if before_id is not None:
        statement = statement.where(col(WebhookDelivery.id) < before_id)
    statement = statement.order_by(col(WebhookDelivery.id).desc()).limit(limit + 1)
    async with db.reads() as session:
        rows = list(await session.exec(statement))
        page = [DeliveryLog(row) for row in rows[:limit]]
        by_id = {log.delivery.id: log for log in page}
        if by_id:
            for attempt in await session.exec(
                select(WebhookAttempt)
                .where(col(WebhookAttempt.delivery_id).in_(by_id))
                .order_by(col(WebhookAttempt.id))
            ):
                by_id[attempt.delivery_id].attempts.append(attempt)
    more = len(rows) > limit
    return page, (page[-1].delivery.id if more and page else None)
