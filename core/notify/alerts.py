"""Exception alerts to dispatchers, once per condition (the scheduler's `alerts.check`, every
minute):

- `order_unassigned`: an order still without a driver whose delivery window starts within
  ALERTS_UNASSIGNED_MINUTES (or has started and not ended), with the buttons of the
  "could not be assigned" alert (assign, change the window, cancel);
- `driver_idle`: a driver on shift with no stops while orders wait for a driver.

A condition that holds gets an `OpenAlert` row (unique kind + subject) and one outbox row per
dispatcher, in one transaction; while the row is there nobody is told again. When the condition
no longer holds the row goes, so a condition that comes back is told again. (A customer chat that
cannot be reached is told once per spell by `core.people.members.chat_unreachable`: the spell
is the member's `telegram_blocked_at`, ended when they write again.)
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.clock import Clock
from core.config import AlertsSettings
from core.db import Database
from core.drivers.stops import OPEN
from core.models import (
    Driver,
    OpenAlert,
    Order,
    OrderStatus,
    OrderWindow,
    ShiftState,
    StopKind,
)
from core.notify import outbox
from core.notify.rules import NOTE_ALERTS, Notice, dispatcher_members

UNASSIGNED = "order_unassigned"
IDLE = "driver_idle"
WAITING = (OrderStatus.NEW, OrderStatus.RESCHEDULED)
TEMPLATES = {UNASSIGNED: "dispatcher.order_unassigned_soon", IDLE: "dispatcher.driver_idle"}
ASSIGN_ACTIONS = NOTE_ALERTS["unassignable"][1]  # assign, change window, cancel
IDLE_AFTER = timedelta(minutes=5)  # a shift just started: the autopilot is giving her stops


class Alerts:
    def __init__(
        self,
        db: Database,
        settings: AlertsSettings,
        timezone: str,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.zone = ZoneInfo(timezone)
        self.clock: Clock = clock or db.now

    async def check(self) -> list[tuple[str, int]]:
        """Open alerts for conditions that began, clear those that ended; the opened ones."""
        now = self.clock()
        horizon = now + timedelta(minutes=self.settings.unassigned_minutes)
        async with self.db.transaction() as session:
            soon = await unassigned_soon(session, now, horizon)
            idle, waiting = await idle_drivers(session, now, self.zone)
            holding = {UNASSIGNED: set(soon), IDLE: idle}
            opened = await session.exec(select(OpenAlert.id, OpenAlert.kind, OpenAlert.subject))
            ended = [i for i, kind, subject in opened if subject not in holding.get(kind, set())]
            if ended:
                await session.exec(sa.delete(OpenAlert).where(col(OpenAlert.id).in_(ended)))
            new = []
            staff = await dispatcher_members(session)
            for kind, subjects in holding.items():
                for subject in sorted(subjects):
                    if await _open(session, kind, subject, now) is None:
                        continue  # told already (or by another instance just now)
                    new.append((kind, subject))
                    order_id = subject if kind == UNASSIGNED else None
                    params, actions = _content(kind, subject, waiting)
                    spell = uuid4().hex  # (row ids may come again once deleted)
                    for member_id in staff:
                        notice = Notice(member_id, TEMPLATES[kind], params, actions)
                        key = f"alert:{kind}:{subject}:{spell}:{member_id}"
                        await outbox.add(session, notice, key, order_id, now)
            return new


def _content(
    kind: str, subject: int, waiting: int
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    if kind == UNASSIGNED:
        actions = tuple({"action": name, "order_id": subject} for name in ASSIGN_ACTIONS)
        return {"order_id": subject}, actions
    return {"driver_id": subject, "count": waiting}, ()


async def _open(session: AsyncSession, kind: str, subject: int, now: datetime) -> int | None:
    """Insert the condition's row; its id, or None when it is open already."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(OpenAlert)
        .values(kind=kind, subject=subject, opened_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "subject"])
        .returning(col(OpenAlert.id))
    )
    return (await session.exec(statement)).scalar_one_or_none()


def _waiting() -> Any:
    return sa.and_(col(Order.status).in_(WAITING), col(Order.driver_id).is_(None))


async def unassigned_soon(
    session: AsyncSession, now: datetime, horizon: datetime
) -> dict[int, datetime]:
    """Orders without a driver whose delivery window starts by `horizon` and has not ended:
    order id -> when that window starts."""
    statement = (
        select(Order.id, sa.func.min(OrderWindow.starts_at))
        .join(OrderWindow, col(OrderWindow.order_id) == Order.id)
        .where(
            _waiting(),
            OrderWindow.stop == StopKind.DELIVERY,
            col(OrderWindow.starts_at) <= horizon,
            col(OrderWindow.ends_at) > now,
        )
        .group_by(col(Order.id))
    )
    rows = await session.exec(statement)
    return {order_id: starts for order_id, starts in rows if order_id is not None}


async def idle_drivers(
    session: AsyncSession, now: datetime, zone: ZoneInfo
) -> tuple[set[int], int]:
    """Drivers on shift (for IDLE_AFTER at least) with no open stop while an order waits for a
    driver today: one whose delivery window starts before the local day ends and has not
    ended, or one without a window that is not due on a later day; and how many orders wait."""
    today = now.astimezone(zone).date()
    tonight = datetime.combine(today + timedelta(days=1), time(), zone)
    delivery = sa.and_(
        col(OrderWindow.order_id) == Order.id, col(OrderWindow.stop) == StopKind.DELIVERY
    )
    today_window = sa.exists().where(
        delivery, col(OrderWindow.starts_at) < tonight, col(OrderWindow.ends_at) > now
    )
    no_window = ~sa.exists().where(delivery) & sa.or_(
        col(Order.due_date).is_(None), col(Order.due_date) <= today
    )
    statement = select(sa.func.count()).where(_waiting(), sa.or_(today_window, no_window))
    waiting = (await session.exec(statement)).one()
    if not waiting:
        return set(), 0
    busy = sa.exists().where(col(Order.driver_id) == Driver.id, col(Order.status).in_(OPEN))
    settled = sa.or_(
        col(Driver.shift_started_at).is_(None), col(Driver.shift_started_at) <= now - IDLE_AFTER
    )
    drivers = select(Driver.id).where(Driver.shift_state == ShiftState.ON, settled, ~busy)
    idle = {driver_id for driver_id in await session.exec(drivers) if driver_id is not None}
    return idle, waiting
