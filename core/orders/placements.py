"""The queue of orders waiting to be placed (the `placements` table), written by the lifecycle.

`wait()` is called in the transaction that makes an order wait for a driver (created, back to
dispatch, rescheduled) and `done()` in the one that moves it on (assigned, cancelled), so the
queue always holds exactly the waiting orders. Each committed `wait()` wakes the autopilot of this
process (`Database.on_commit(TOPIC, …)`); other processes find the row by polling.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.models import Order, Placement

TOPIC = "placements"
ASSIGNED_TOPIC = "assigned"
REPLAN_TOPIC = "replan"


async def wait(session: AsyncSession, order_id: int) -> None:
    """Queue the order for placement, due at once; a row it had starts afresh (not parked, not
    alerted: it changed, so a dispatcher hears again if it still cannot be placed). The caller
    holds the order's row lock, so no two writers race for this row."""
    row = await session.get(Placement, order_id)
    if row is None:
        row = Placement(order_id=order_id)
    row.due_at = None
    row.parked = row.alerted = False
    row.lease_token = row.leased_until = None
    session.add(row)
    session.info.setdefault("topics", set()).add(TOPIC)


def assigned(session: AsyncSession, driver_id: int) -> None:
    """After commit, the autopilot may send this driver's first stop out (`ASSIGNED_TOPIC`)."""
    session.info.setdefault("assigned_drivers", set()).add(driver_id)
    session.info.setdefault("topics", set()).add(ASSIGNED_TOPIC)


def replan(session: AsyncSession) -> None:
    """After commit, the autopilot re-plans the day (`REPLAN_TOPIC`): an order left a driver's
    route undelivered (cancelled, failed, sent back to dispatch)."""
    session.info.setdefault("topics", set()).add(REPLAN_TOPIC)


async def done(session: AsyncSession, order_id: int) -> None:
    """The order no longer waits: off the queue (whoever was placing it finds it gone)."""
    await session.exec(sa.delete(Placement).where(Placement.order_id == order_id))  # type: ignore[arg-type]


async def claim(
    db: Database, token: str, now: datetime, lease: timedelta, limit: int
) -> list[Placement]:
    """Lease up to `limit` due rows (not parked, due by `now` on the service's clock, their
    lease over) to `token`; `lease` is real time (`Database.span`). Rows another instance is
    claiming are skipped."""
    lease_now = db.now()
    async with db.transaction() as session:
        statement = (
            select(Placement)
            .where(
                col(Placement.parked).is_(False),
                col(Placement.due_at).is_(None) | (col(Placement.due_at) <= now),
                col(Placement.leased_until).is_(None) | (col(Placement.leased_until) < lease_now),
            )
            .order_by(col(Placement.order_id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(await session.exec(statement))
        for row in rows:
            row.lease_token = token
            row.leased_until = lease_now + db.span(lease)
            session.add(row)
        return rows


async def release(db: Database, order_ids: list[int], token: str) -> None:
    """Hand rows `token` still holds back, due at once (a pass that failed)."""
    async with db.transaction() as session:
        await session.exec(
            sa.update(Placement)
            .where(col(Placement.order_id).in_(order_ids), col(Placement.lease_token) == token)
            .values(lease_token=None, leased_until=None)
        )


async def make_due(db: Database, day: date) -> None:
    """Every queued order of `day` (or earlier, or of no day) is due now, parked or not. A pass
    holding one of them loses its lease: what it decided was decided before this news (a driver
    who just became ready), so it must not park the row again."""
    of_day = select(Order.id).where(col(Order.due_date).is_(None) | (col(Order.due_date) <= day))
    async with db.transaction() as session:
        await session.exec(
            sa.update(Placement)
            .where(col(Placement.order_id).in_(of_day))
            .values(parked=False, due_at=None, lease_token=None, leased_until=None)
        )
