"""API keys for merchant systems, and the idempotency keys their requests carry.

A key is shown once, when it is made (`lm_<prefix>_<secret>`); only its SHA-256 is stored, and
the 8-character prefix names it in lists and in `lastmile apikey revoke`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import OrdersSettings
from core.db import Database, retrying
from core.errors import DomainError, NotFound
from core.models import ApiIdempotencyKey, ApiKey, session_time
from core.orders.lifecycle import Actor
from core.orders.service import (
    DuplicateRef,
    OrderDraft,
    Outcome,
    add_order,
    add_orders,
    find_by_ref,
)

PREFIX_LENGTH = 8
SECRET_BYTES = 32  # 256 random bits
SECRET_FORM = re.compile(r"^lm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")
USE_RECORDED_EVERY = timedelta(minutes=1)
IDEMPOTENCY_TTL = timedelta(days=1)


def actor(key: ApiKey) -> Actor:
    """Who an API client's changes are recorded as, in order events."""
    return Actor(f"api:{key.id}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(db: Database, name: str) -> tuple[ApiKey, str]:
    """A new key named `name`; returns the row and the secret (which is not stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise DomainError("api.key_name")
    async with db.transaction() as session:
        while True:
            prefix = secrets.token_hex(PREFIX_LENGTH // 2)
            taken = await session.exec(select(ApiKey.id).where(ApiKey.prefix == prefix))
            if taken.first() is None:
                break
        secret = f"lm_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        key = ApiKey(name=name, prefix=prefix, key_hash=digest(secret))
        session.add(key)
    return key, secret


async def authenticate(
    db: Database, secret: str | None, *, now: datetime | None = None
) -> ApiKey | None:
    """The live key whose secret this is, or None. The secret is looked up by its hash, so
    the lookup time says nothing about how much of a guess was right."""
    if not secret or not SECRET_FORM.match(secret):
        return None
    wanted = digest(secret)
    async with db.reads() as session:
        key = (await session.exec(select(ApiKey).where(ApiKey.key_hash == wanted))).first()
    if key is None or not hmac.compare_digest(key.key_hash, wanted) or key.revoked_at:
        return None
    now = now or db.now()
    if key.last_used_at is None or now - key.last_used_at >= USE_RECORDED_EVERY:
        async with db.transaction() as session:
            row = await session.get(ApiKey, key.id)
            if row is not None:
                row.last_used_at = now
                session.add(row)
        key.last_used_at = now
    return key


async def _by_prefix(session: AsyncSession, prefix: str) -> ApiKey:
    """The key with this prefix (with or without the `lm_`), or `NotFound`."""
    prefix = prefix.strip().removeprefix("lm_")[:PREFIX_LENGTH]
    key = (await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).first()
    if key is None:
        raise NotFound("api.key_not_found", prefix=prefix)
    return key


async def by_prefix(db: Database, prefix: str) -> ApiKey:
    async with db.reads() as session:
        return await _by_prefix(session, prefix)


async def revoke(db: Database, prefix: str) -> ApiKey:
    """Revoke the key with this prefix (with or without the `lm_`); revoking twice is harmless."""
    async with db.transaction() as session:
        key = await _by_prefix(session, prefix)
        if key.revoked_at is None:
            key.revoked_at = db.now()
            session.add(key)
    return key


async def remembered(session: AsyncSession, api_key_id: int, key: str) -> ApiIdempotencyKey | None:
    """The order an earlier request with this idempotency key made, if any (and not expired)."""
    statement = select(ApiIdempotencyKey).where(
        ApiIdempotencyKey.api_key_id == api_key_id,
        ApiIdempotencyKey.key == key,
        ApiIdempotencyKey.created_at > session_time(session) - IDEMPOTENCY_TTL,
    )
    return (await session.exec(statement)).first()


async def remember(
    session: AsyncSession, api_key_id: int, key: str, request_hash: str, order_id: int
) -> None:
    """Record the key in the caller's transaction, forgetting keys older than a day."""
    await session.exec(
        sa.delete(ApiIdempotencyKey).where(
            col(ApiIdempotencyKey.created_at) <= session_time(session) - IDEMPOTENCY_TTL
        )
    )
    session.add(
        ApiIdempotencyKey(
            api_key_id=api_key_id, key=key, request_hash=request_hash, order_id=order_id
        )
    )
    await session.flush()


class IdempotencyConflict(DomainError):
    """The idempotency key was used before with a different request."""


async def create_order(
    db: Database,
    key: ApiKey,
    draft: OrderDraft,
    *,
    idempotency_key: str | None = None,
    request_hash: str = "",
    rules: OrdersSettings | None = None,
) -> tuple[int, bool]:
    """Create an order for an API client, at most once per idempotency key and per
    `external_ref`. Returns (order id, whether it was created now). Requests that arrive at
    once: one creates the order, the others read what it saved (and compare their body)."""
    assert key.id is not None
    key_id = key.id

    async def attempt() -> tuple[int, bool]:
        async with db.transaction() as session:
            # the order first: when it is seen committed, so is the key saved with it
            found = await find_by_ref(session, draft.external_ref) if draft.external_ref else None
            if idempotency_key and (seen := await remembered(session, key_id, idempotency_key)):
                if not hmac.compare_digest(seen.request_hash, request_hash):
                    raise IdempotencyConflict(
                        "api.idempotency_conflict", key=idempotency_key, order=seen.order_id
                    )
                return seen.order_id, False
            if found is not None:
                assert found.id is not None
                return found.id, False
            order = await add_order(
                session, draft, actor(key), source="api", rules=rules, api_key_id=key.id
            )
            assert order.id is not None
            if idempotency_key:
                await remember(session, key_id, idempotency_key, request_hash, order.id)
            return order.id, True

    # a concurrent request with the same key or reference committed first: read it again
    return await retrying(attempt, also=(IntegrityError, DuplicateRef))


async def create_orders(
    db: Database,
    key: ApiKey,
    drafts: Sequence[tuple[int, OrderDraft]],
    *,
    rules: OrdersSettings | None = None,
) -> dict[int, Outcome]:
    """Create many orders in one transaction (see `orders.add_orders`): per index, (order id,
    created now) or the reason it was refused. An existing `external_ref` creates nothing."""

    async def attempt() -> dict[int, Outcome]:
        async with db.transaction() as session:
            return await add_orders(
                session, drafts, actor(key), source="api", rules=rules, api_key_id=key.id
            )

    return await retrying(attempt)
