"""Webhook bodies stored before they are answered, and processed once.

`store` keeps a signed body (one row per distinct body: Meta sends a body again until it gets a
2xx, for days, so a repeat is recognised by its SHA-256 and not stored twice). The channel's
worker `claim`s stored bodies under a lease (core.leases, as the outbox does), so a crash after
the 200 loses nothing: a body whose worker died is claimed again when its lease runs out. Each
message is taken in hand once across bodies (`take`): a message carried again by another body
(Meta batches retries differently) is skipped; the same body processed again after a crash
re-does only the messages it had not finished."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from core import leases
from core.db import Database
from core.leases import LEASE
from core.models import Channel, InboundBody, InboundSeen, OutboxStatus

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 5
BACKOFF_MAX_S = 600


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def store(db: Database, channel: Channel, body: bytes) -> bool:
    """Keep `body` to be processed; False when the same body was stored before (a repeat)."""
    sha = digest(body)
    try:
        async with db.transaction() as session:
            repeat = await session.exec(
                select(InboundBody.id).where(
                    InboundBody.channel == channel, InboundBody.body_sha256 == sha
                )
            )
            if repeat.first() is not None:
                return False
            session.add(InboundBody(channel=channel, body_sha256=sha, body=body))
    except sa.exc.IntegrityError:  # the same body, stored by a request racing this one
        return False
    return True


async def claim(
    db: Database, channel: Channel, *, limit: int, lease: timedelta = LEASE
) -> list[InboundBody]:
    """Lease up to `limit` bodies that are due, oldest first, under one new token."""
    async with db.transaction() as session:
        now = db.now()
        statement = (
            select(InboundBody)
            .where(
                col(InboundBody.channel) == channel,
                col(InboundBody.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                col(InboundBody.next_attempt_at) <= now,
            )
            .order_by(col(InboundBody.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list((await session.exec(statement)).all())
        leases.take_all(session, rows, now, lease)
        await session.flush()
        return rows


async def finish(db: Database, body_id: int, token: str, now: datetime) -> bool:
    """The body is processed (only while `token` holds it)."""
    async with db.transaction() as session:
        result = await session.exec(
            sa.update(InboundBody)
            .where(col(InboundBody.id) == body_id, leases.held(InboundBody, token))
            .values(status=OutboxStatus.SENT, processed_at=now, last_error=None)
        )
        return bool(result.rowcount)


async def hand_back(db: Database, ids: list[int], token: str) -> None:
    """Bodies claimed but not started (the worker stops): due again at once."""
    await leases.hand_back(db, InboundBody, ids, token=token)


async def failed(db: Database, row: InboundBody, token: str, error: str) -> None:
    """Processing the body failed: try again later, with a growing pause; given up after
    MAX_ATTEMPTS (kept, with its error, for an operator)."""
    pause = timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(row.attempts - 1, 0), BACKOFF_MAX_S))
    dead = row.attempts >= MAX_ATTEMPTS
    async with db.transaction() as session:
        await session.exec(
            sa.update(InboundBody)
            .where(col(InboundBody.id) == row.id, leases.held(InboundBody, token))
            .values(
                status=OutboxStatus.DEAD if dead else OutboxStatus.PENDING,
                next_attempt_at=db.now() + db.span(pause),
                last_error=error[:1000],
            )
        )


async def take(db: Database, key: str, body_id: int) -> bool:
    """Whether the message `key` is this body's to process: first seen here, or taken in hand
    by this same body before and not finished (its worker died)."""
    try:
        async with db.transaction() as session:
            seen = await session.get(InboundSeen, key)
            if seen is None:
                session.add(InboundSeen(key=key, body_id=body_id))
                return True
            return not seen.done and seen.body_id == body_id
    except sa.exc.IntegrityError:  # another body took it in hand at the same moment
        return False


async def done(db: Database, key: str) -> None:
    async with db.transaction() as session:
        await session.exec(
            sa.update(InboundSeen).where(col(InboundSeen.key) == key).values(done=True)
        )


async def prune(db: Database, channel: Channel, before: datetime) -> int:
    """Delete bodies processed before `before` (and, with them, their messages' ids); how many.
    Bodies given up on are kept for an operator."""
    async with db.transaction() as session:
        old = select(InboundBody.id).where(
            col(InboundBody.channel) == channel,
            col(InboundBody.status) == OutboxStatus.SENT,
            col(InboundBody.processed_at) < before,
        )
        await session.exec(sa.delete(InboundSeen).where(col(InboundSeen.body_id).in_(old)))
        result = await session.exec(sa.delete(InboundBody).where(col(InboundBody.id).in_(old)))
        return int(result.rowcount)
