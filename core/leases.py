"""Leases on the rows senders claim: outbox messages, merchant webhook deliveries, and inbound
webhook bodies (a chat channel's worker processing them).

A claim leases each row it takes (`take`) under a new token, until `next_attempt_at`. Only the
holder of a live lease sends a row, and it proves it still holds it right before each send:
`Leases.hold` renews the row's lease if, and only if, the row still carries the holder's token
(the fence). Another instance can take a row over only once its lease has run out, so a send
that starts after `hold` and ends within half the lease (`hold` returns that deadline; the other
half is room for clocks that differ between instances) never overlaps another instance's send
of the same row. While a batch waits its turn (a chat's pace, a 429's retry_after), `kept`
renews every row it still holds, so a lease runs out only on an instance that died or lost the
database. What a sender writes afterwards (sent, failed, handed back) is written only if the
token still holds the row. A row whose holder died is claimed again when its lease runs out:
delivery is at least once, and the idempotency key lets the receiving side drop a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.clock import Clock
from core.config import OutboxSettings
from core.db import Database
from core.models import (
    InboundBody,
    OutboxMessage,
    OutboxStatus,
    WebhookDelivery,
    session_clock,
)

log = logging.getLogger(__name__)
LEASE = OutboxSettings().lease  # the default OUTBOX_LEASE_S
Leased = OutboxMessage | WebhookDelivery | InboundBody


def new_token() -> str:
    return secrets.token_hex(16)


def take(row: Leased, token: str, now: datetime, length: timedelta = LEASE) -> None:
    """Lease a claimed row to the claimer (in the claim's transaction); counts an attempt.
    `length` is on the service's clock (`Database.span` of the real lease)."""
    row.status = OutboxStatus.SENDING
    row.attempts += 1
    row.lease_token = token
    row.next_attempt_at = now + length


def take_all(
    session: AsyncSession, rows: Sequence[Leased], now: datetime, length: timedelta
) -> str:
    """Lease claimed rows to one new token (in the claim's transaction); the token."""
    token = new_token()
    for row in rows:
        take(row, token, now, session_clock(session).span(length))
        session.add(row)
    return token


def lost(row: Leased, token: str | None) -> bool:
    """Whether `token` no longer holds `row` (None: the caller holds no lease, e.g. a test)."""
    if token is None:
        return False
    return row.status is not OutboxStatus.SENDING or row.lease_token != token


def held(table: type[Leased], token: str | None) -> sa.ColumnElement[bool]:
    """Rows in flight, and when `token` is given only those it still holds."""
    clause = col(table.status) == OutboxStatus.SENDING
    return clause if token is None else sa.and_(clause, col(table.lease_token) == token)


async def hand_back(
    db: Database,
    table: type[Leased],
    ids: Sequence[int],
    *,
    token: str | None = None,
    now: datetime | None = None,
) -> None:
    """Hand leased rows back untried (a sender stopping): due at once, and the attempt that
    claiming counted is taken back. With `token`, only rows it still holds."""
    if not ids:
        return
    async with db.transaction() as session:
        await session.exec(
            sa.update(table)
            .where(col(table.id).in_(ids), held(table, token))
            .values(
                status=OutboxStatus.PENDING,
                attempts=table.attempts - 1,
                next_attempt_at=now or db.now(),
            )
        )


@dataclass(frozen=True)
class Leases:
    """A sender's leases on one table's rows: how long they last (real time), on the service's
    clock (the database's unless `clock` is given)."""

    db: Database
    table: type[Leased]
    length: timedelta = LEASE
    clock: Clock | None = None

    async def hold(self, row_id: int, token: str) -> float | None:
        """The fence, right before sending a row: renew its lease if `token` still holds it.
        Returns the event-loop time by which the send must be over (half the lease from now),
        or None when another sender has taken the row over: then it must not be sent."""
        started = asyncio.get_running_loop().time()
        if not await self._renew(sa.and_(col(self.table.id) == row_id, held(self.table, token))):
            return None
        return started + self.length.total_seconds() / 2

    async def renew(self, token: str) -> int:
        """Renew the lease of every row `token` still holds; how many those are."""
        return await self._renew(held(self.table, token))

    async def _renew(self, where: sa.ColumnElement[bool]) -> int:
        async with self.db.transaction() as session:
            now = self.clock() if self.clock is not None else self.db.now()
            until = now + self.db.span(self.length)
            result = await session.exec(
                sa.update(self.table).where(where).values(next_attempt_at=until)
            )
            return result.rowcount

    @asynccontextmanager
    async def kept(self, token: str) -> AsyncIterator[None]:
        """Renew the rows `token` holds every third of the lease while the block runs."""
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep(token, done))
        try:
            yield
        finally:
            done.set()  # a renewal under way finishes; none is cut off mid-transaction
            await keeper

    async def _keep(self, token: str, done: asyncio.Event) -> None:
        every = self.length.total_seconds() / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every)
            if done.is_set():
                return
            try:
                await self.renew(token)
            except Exception:  # the fence still stops a send whose lease ran out meanwhile
                log.warning("could not renew leases in %s", self.table.__tablename__, exc_info=True)
