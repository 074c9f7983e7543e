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
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import WebhooksSettings
from core.db import Database
from core.errors import DomainError, NotFound
from core.models import (
    ApiKey,
    Order,
    OrderEvent,
    OrderStatus,
    OutboxStatus,
    Proof,
    ProofKind,
    WebhookAttempt,
    WebhookDelivery,
    tracking_url,
)
from core.policy import policy_of

SIGNATURE_HEADER = "Lastmile-Signature"
EVENT_HEADER = "Lastmile-Event"
DELIVERY_HEADER = "Lastmile-Delivery"
EVENT_TYPES = {
    "created": "order.created",
    "status_changed": "order.status_changed",
    "status_undone": "order.status_undone",
}
MAX_URL = 2000


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(secret: str, body: bytes) -> str:
    """The `Lastmile-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature or "")


def check_url(url: str, rules: WebhooksSettings) -> str:
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
    if not rules.allow_private and not public_host(parts.hostname):
        raise DomainError("webhook.url_private", host=parts.hostname)
    if parts.scheme == "http" and rules.require_https and not _loopback(parts.hostname):
        raise DomainError("webhook.url_https")
    return url


def public_host(host: str) -> bool:
    """False for a name or address that is plainly not on the public internet; names are
    checked again, resolved, when a webhook is sent (`sender.PublicOnly`)."""
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return True  # a name


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def set_url(
    db: Database,
    key_id: int,
    url: str | None,
    *,
    all_orders: bool = False,
    rules: WebhooksSettings | None = None,
) -> ApiKey:
    """Point key `key_id`'s webhook at `url` (a secret is made the first time), or switch it off
    with None; switching off skips what was still waiting to be delivered."""
    url = check_url(url, rules or WebhooksSettings()) if url is not None else None
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


async def proof_summary(session: AsyncSession, order_id: int) -> dict[str, Any] | None:
    """What a delivered order's proofs are, for its webhook: kinds, the recipient's name, each
    file's SHA-256, when and where it was signed. Files are fetched by `GET /orders/{id}/proof`
    (fresh signed links): a link in a body that may be retried for hours would expire."""
    statement = select(Proof).where(Proof.order_id == order_id).order_by(col(Proof.id))
    kept = list(await session.exec(statement))
    if not kept:
        return None
    summary: dict[str, Any] = {"kinds": sorted({str(p.kind) for p in kept})}
    if photo := next((p for p in reversed(kept) if p.kind is ProofKind.PHOTO), None):
        summary["photo_sha256"] = photo.sha256
    names = [p.recipient_name for p in kept if p.recipient_name]
    summary["recipient_name"] = names[-1] if names else None
    if drawn := next((p for p in reversed(kept) if p.signature_sha256), None):
        summary["signature"] = {
            "png_sha256": drawn.sha256,
            "svg_sha256": drawn.signature_sha256,
            "signed_at": drawn.captured_at.isoformat(),
            "lat": drawn.lat,
            "lon": drawn.lon,
        }
    return summary


def payload(
    order: Order,
    event: OrderEvent,
    event_type: str,
    base_url: str,
    proof: dict[str, Any] | None = None,
) -> str:
    """The body sent for `event`: compact JSON, keys sorted; a delivery's carries its proof."""
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
            "tracking_url": tracking_url(base_url, order.tracking_token),
        },
    }
    if proof is not None:
        document["data"]["proof"] = proof  # type: ignore[index]
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
    key_ids = [key_id for key_id in await session.exec(listening) if key_id is not None]
    if not key_ids:
        return
    assert order.id is not None and event.id is not None
    policy = policy_of(session)
    proof = None
    if event.to_status is OrderStatus.DELIVERED:
        proof = await proof_summary(session, order.id)
    body = payload(order, event, event_type, policy.base_url, proof)
    for key_id in key_ids:
        session.add(
            WebhookDelivery(
                api_key_id=key_id,
                order_id=order.id,
                event_id=event.id,
                event_type=event_type,
                body=body,
                next_attempt_at=event.created_at,
                retry_until=event.created_at + policy.webhook_retry_for,
                created_at=event.created_at,
            )
        )


async def redeliver(
    db: Database, key_id: int, delivery_id: int, *, now: datetime | None = None
) -> None:
    """Try one of this key's deliveries once more, now (also one that gave up)."""
    now = now or db.now()
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
