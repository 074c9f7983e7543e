"""What a channel did with an outbox row's messages: each message it accepted (`record_part`)
and the receipts it reports for them later (`apply`: sent, delivered, read, failed).

A row may go out as several messages (WhatsApp: a text, then its buttons). Each accepted message
is recorded with its id in one transaction with the row's progress (`parts_sent`), and the last
one marks the row sent in that same transaction: a retry or a restart sends only what the
channel has not accepted yet.

Receipts arrive at least once and in any order, even before the send's own answer:
- each (message, receipt) is applied once (a repeat changes nothing);
- a message and its row only move forward (sent < delivered < read; failed ends it);
- a receipt for a message not recorded yet is kept and applied when the sender records it;
- a `failed` with one of `template_codes` (WhatsApp 131047: the person's 24-hour window had
  closed) sends the row again as its template, once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from enum import Enum
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import leases
from core.db import Database
from core.models import Channel, OutboxMessage, OutboxStatus, SentMessage

log = logging.getLogger(__name__)
T = TypeVar("T")
RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
SENT_AGAIN = "outside the 24-hour window: sent again as its template"


class Recorded(Enum):
    RECORDED = "recorded"
    LOST = "lost"  # the lease was lost: another sender has the row
    SWITCHED = "switched"  # a receipt that came first turned the row into its template


async def record_part(
    db: Database,
    row_id: int,
    *,
    token: str | None,
    channel: Channel,
    external_id: str,
    part: int,
    last: bool,
    template_codes: Collection[int] = (),
) -> Recorded:
    """The channel accepted part `part` of the row as message `external_id`; with `last`, the
    row is sent. Only while `token` holds the row."""

    async def once() -> Recorded:
        async with db.transaction() as session:
            row = await session.get(OutboxMessage, row_id, with_for_update=True)
            if row is None or leases.lost(row, token):
                return Recorded.LOST
            row.parts_sent = part + 1
            if last:
                row.status = OutboxStatus.SENT
                row.sent_at = db.now()
                row.last_error = None
            sent = await _sent(session, channel, external_id)
            if sent is None:
                session.add(
                    SentMessage(
                        channel=channel, external_id=external_id, outbox_id=row_id, part=part
                    )
                )
                session.add(row)
                return Recorded.RECORDED
            sent.outbox_id, sent.part = row_id, part  # receipts came first: apply them now
            session.add(sent)
            switched = False
            for status in sorted(RANK, key=RANK.__getitem__):
                at = getattr(sent, f"{status}_at")
                if at is not None:
                    switched |= _to_row(row, sent, status, at, db.now(), template_codes)
            session.add(row)
            return Recorded.SWITCHED if switched else Recorded.RECORDED

    return await _twice(once)


async def send_as_template(db: Database, row_id: int, *, token: str | None) -> bool:
    """The channel refused the row because the person's window is closed: send it again at
    once as its template (once: a row already sent as its template is not switched). The try
    that was refused is not counted. Only while `token` holds the row."""
    async with db.transaction() as session:
        row = await session.get(OutboxMessage, row_id, with_for_update=True)
        if row is None or row.as_template or leases.lost(row, token):
            return False
        _as_template(row, db.now())
        row.attempts = max(row.attempts - 1, 0)
        session.add(row)
        return True


async def apply(
    db: Database,
    channel: Channel,
    external_id: str,
    status: str,
    at: datetime,
    *,
    error_code: int | None = None,
    error_title: str | None = None,
    template_codes: Collection[int] = (),
) -> bool:
    """Apply one receipt; whether its message is known (a receipt for one not recorded yet is
    kept for when it is). Receipts other than sent, delivered, read and failed are ignored."""

    async def once() -> bool:
        async with db.transaction() as session:
            sent = await _sent(session, channel, external_id)
            if sent is None:
                sent = SentMessage(channel=channel, external_id=external_id)
            if status not in RANK:
                return sent.outbox_id is not None
            column = f"{status}_at"
            if getattr(sent, column) is not None:
                return sent.outbox_id is not None  # a repeat: applied once already
            setattr(sent, column, at)
            if RANK[status] > RANK.get(sent.status or "", 0):
                sent.status = status
            if status == "failed":
                sent.error_code = error_code
                sent.error_title = (error_title or "")[:300] or None
            session.add(sent)
            await session.flush()
            if sent.outbox_id is None:
                log.info(
                    "receipt %s for %s %s before its send was recorded",
                    status,
                    channel,
                    external_id,
                )
                return False
            row = await session.get(OutboxMessage, sent.outbox_id, with_for_update=True)
            if row is not None:
                _to_row(row, sent, status, at, db.now(), template_codes)
                session.add(row)
            return True

    return await _twice(once)


async def row_of(db: Database, channel: Channel, external_id: str) -> OutboxMessage | None:
    """The outbox row whose send returned message `external_id`, if one did."""
    async with db.reads() as session:
        statement = (
            select(OutboxMessage)
            .join(SentMessage, col(SentMessage.outbox_id) == OutboxMessage.id)
            .where(SentMessage.channel == channel, SentMessage.external_id == external_id)
        )
        return (await session.exec(statement)).first()


async def prune(db: Database, channel: Channel, before: datetime) -> int:
    """Forget receipts kept since before `before` for messages no outbox row sent (replies sent
    directly, or a send that never came back); how many. Meta stops retrying within days."""
    async with db.transaction() as session:
        result = await session.exec(
            sa.delete(SentMessage).where(
                col(SentMessage.channel) == channel,
                col(SentMessage.outbox_id).is_(None),
                col(SentMessage.created_at) < before,
            )
        )
        return int(result.rowcount)


async def _twice(work: Callable[[], Awaitable[T]]) -> T:
    """`work` once more when it clashed with another transaction inserting the same message at
    the same moment (a receipt and the send's record): the second time it finds it."""
    try:
        return await work()
    except sa.exc.IntegrityError:
        return await work()


async def _sent(session: AsyncSession, channel: Channel, external_id: str) -> SentMessage | None:
    statement = (
        select(SentMessage)
        .where(SentMessage.channel == channel, SentMessage.external_id == external_id)
        .with_for_update()
    )
    return (await session.exec(statement)).first()


def _to_row(
    row: OutboxMessage,
    sent: SentMessage,
    status: str,
    at: datetime,
    now: datetime,
    template_codes: Collection[int],
) -> bool:
    """A message's receipt on its row; whether it turned the row into its template."""
    if status == "failed" and sent.error_code in template_codes and not row.as_template:
        _as_template(row, now)
        row.lease_token = None  # whoever holds it sends no more of it
        return True
    if RANK[status] > RANK.get(row.delivery_status or "", 0):
        row.delivery_status, row.delivery_at = status, at
    if status == "failed":
        row.last_error = f"failed ({sent.error_code}): {sent.error_title or ''}".strip()[:1000]
    return False


def _as_template(row: OutboxMessage, now: datetime) -> None:
    """Send the row again from the start, as its template, now."""
    row.as_template = True
    row.status = OutboxStatus.PENDING
    row.parts_sent = 0
    row.next_attempt_at = now
    row.delivery_status, row.delivery_at = None, None
    row.last_error = SENT_AGAIN
