"""The sender's side of the webhook deliveries table: lease due deliveries, record each
attempt, retry with backoff until the delivery's day is over, hand back what was not tried.
(What is delivered, to whom and how it is signed: `core.merchants.deliveries`.)"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from core import leases
from core.db import Database
from core.leases import LEASE
from core.merchants.deliveries import MAX_URL
from core.models import ApiKey, OutboxStatus, WebhookAttempt, WebhookDelivery

BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to a sender (under `token`), with where to send it and the secret to
    sign it with."""

    id: int
    url: str
    secret: str
    event_type: str
    body: str
    token: str


async def claim(
    db: Database, *, limit: int = 20, now: datetime | None = None, lease: timedelta = LEASE
) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest first, all under one new token (several
    senders may run at once)."""
    now = now or db.now()
    token = leases.new_token()
    statement = (
        select(WebhookDelivery, ApiKey)
        .join(ApiKey, col(ApiKey.id) == WebhookDelivery.api_key_id)
        .where(
            col(WebhookDelivery.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
            col(WebhookDelivery.next_attempt_at) <= now,
        )
        .order_by(col(WebhookDelivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    claimed = []
    async with db.transaction() as session:
        for delivery, key in (await session.exec(statement)).all():
            assert delivery.id is not None
            if not key.webhook_url or not key.webhook_secret or key.revoked_at is not None:
                delivery.status = OutboxStatus.SKIPPED
                delivery.last_error = "the API key was revoked or its webhook switched off"
            else:
                leases.take(delivery, token, now, db.span(lease))
                claimed.append(
                    Claimed(
                        delivery.id,
                        key.webhook_url,
                        key.webhook_secret,
                        delivery.event_type,
                        delivery.body,
                        token,
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
    db: Database,
    delivery_id: int,
    outcome: Outcome,
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> OutboxStatus:
    """Log the attempt, then mark the delivery sent, due again later, or dead after its day
    (with `token`, only while it holds the delivery)."""
    now = now or db.now()
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
        if delivery.status is not OutboxStatus.SENDING or leases.lost(delivery, token):
            return delivery.status  # switched off or taken over meanwhile: keep that
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
    db: Database,
    delivery_ids: Sequence[int],
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> None:
    """Give back leased deliveries that were not tried (a sender stopping), due at once; with
    `token`, only those it still holds."""
    await leases.hand_back(db, WebhookDelivery, delivery_ids, token=token, now=now)
