"""A driver's shift: starting it, and ending it in one transaction that says what happened to
each of her orders. Every spell on shift is kept (`shifts`) for the reports.

Ending a shift with no parcel on board sends her unstarted orders back to dispatch (their manual
locks released, their open stops off her route). With a parcel on board (picked up, out for
delivery, at the door, or loaded in her van when she set off) nothing changes: the shift goes
on, she is told which parcels to deliver or mark failed first, and the dispatchers get one
alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from core.db import Database
from core.dispatch.world import on_board as loaded
from core.drivers.stops import ref_of
from core.errors import DomainError
from core.models import Driver, Order, OrderStatus, Shift, ShiftState
from core.notify import outbox
from core.notify.rules import Notice, dispatcher_members
from core.orders import lifecycle
from core.orders.lifecycle import Actor

S = OrderStatus
UNSTARTED = (S.ASSIGNED,)
ON_BOARD = (S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED)


@dataclass(frozen=True)
class ShiftEnd:
    ended: bool
    returned: tuple[str, ...] = ()  # orders sent back to dispatch (their references)
    on_board: tuple[str, ...] = ()  # parcels she must deliver or mark failed first


async def start_shift(
    db: Database, driver_id: int, *, ends_at: datetime | None = None, now: datetime | None = None
) -> Driver:
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id, with_for_update=True)
        assert driver is not None
        if driver.shift_state is not ShiftState.ON:
            driver.shift_started_at = now or db.now()
            session.add(Shift(driver_id=driver_id, started_at=driver.shift_started_at))
        driver.shift_state = ShiftState.ON
        driver.shift_ends_at = ends_at
        driver.stale_alerted_at = None
        session.add(driver)
        return driver


async def on_shift(db: Database, driver_id: int) -> bool:
    async with db.reads() as session:
        driver = await session.get(Driver, driver_id)
        return driver is not None and driver.shift_state is ShiftState.ON


async def end_shift(
    db: Database,
    driver_id: int,
    actor: Actor,
    *,
    max_attempts: int,
    now: datetime | None = None,
) -> ShiftEnd:
    """End her shift, or refuse while she has parcels on board; all of it in one transaction,
    with her and her orders locked (driver first, then orders, as every plan write does)."""
    async with db.transaction() as session:
        driver = await session.get(Driver, driver_id, with_for_update=True)
        if driver is None:
            raise DomainError("error.driver_not_found", driver=driver_id)
        if driver.shift_state is not ShiftState.ON:
            return ShiftEnd(ended=True)  # a second tap: orders given to her since stay hers
        statement = (
            select(Order)
            .where(Order.driver_id == driver_id, col(Order.status).in_([*UNSTARTED, *ON_BOARD]))
            .order_by(col(Order.id))
            .with_for_update()
        )
        orders = list(await session.exec(statement))
        if on_board := [o for o in orders if o.status in ON_BOARD or loaded(o)]:
            refs = tuple(ref_of(o) for o in on_board)
            started = driver.shift_started_at.isoformat() if driver.shift_started_at else ""
            spell = f"shift-end:{driver_id}:{started}:{','.join(str(o.id) for o in on_board)}"
            params = {"driver_id": driver_id, "refs": ", ".join(refs)}
            for member_id in await dispatcher_members(session):
                notice = Notice(member_id, "dispatcher.shift_end_on_board", params)
                await outbox.add(session, notice, f"{spell}:{member_id}")  # once per parcel set
            return ShiftEnd(ended=False, on_board=refs)
        for order in orders:
            assert order.id is not None
            await lifecycle.transition(session, order.id, S.NEW, actor, max_attempts=max_attempts)
        driver.shift_state = ShiftState.OFF
        driver.live_until = None
        spells = select(Shift).where(Shift.driver_id == driver_id, col(Shift.ended_at).is_(None))
        for open_spell in await session.exec(spells):  # the reports count shifts and hours
            open_spell.ended_at = now or db.now()
            session.add(open_spell)
        session.add(driver)
        return ShiftEnd(ended=True, returned=tuple(ref_of(o) for o in orders))
