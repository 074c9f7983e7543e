"""The queue of orders waiting to be placed (the `placements` table), written by the lifecycle.

`wait()` is called in the transaction that makes an order wait for a driver (created, back to
dispatch, rescheduled) and `done()` in the one that moves it on (assigned, cancelled), so the
queue always holds exactly the waiting orders. Each committed `wait()` wakes the autopilot of this
process (`Database.on_commit(TOPIC, …)`); other processes find the row by polling.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import Placement

TOPIC = "placements"
ASSIGNED_TOPIC = "assigned"


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


async def done(session: AsyncSession, order_id: int) -> None:
    """The order no longer waits: off the queue (whoever was placing it finds it gone)."""
    await session.exec(sa.delete(Placement).where(Placement.order_id == order_id))  # type: ignore[arg-type]
