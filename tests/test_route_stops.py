"""Route stops follow their order: one open stop per order and kind, visits kept as history, the
ETA read from the open stop, undo opening a visit again, and the migration that repairs old rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import col, select

from core.db import Database
from core.drivers.stops import Stops, delivery_eta
from core.migrations import alembic_config
from core.models import Order, OrderStatus, Route, RouteStop
from core.orders import service as orders
from core.orders.lifecycle import Actor, Change, Window
from tests.factories import move
from tests.test_dispatch import EAST, NOW, WEST, near, on_shift, order_at, planner

S = OrderStatus
BOSS = Actor("test-dispatcher")
REVISION = "87b5056278fb"  # one open stop per order and kind


async def stops_of(db: Database, order_id: int) -> list[RouteStop]:
    async with db.sessions() as session:
        statement = select(RouteStop).where(RouteStop.order_id == order_id)
        return list(await session.exec(statement.order_by(col(RouteStop.id))))


async def route_driver(db: Database, stop: RouteStop) -> int:
    async with db.sessions() as session:
        route = await session.get(Route, stop.route_id)
        assert route is not None
        return route.driver_id


async def test_the_eta_is_the_open_stops_after_a_failed_visit(db: Database):
    """Wanda fails at the door; the order is rescheduled and given to Erik. The failed visit
    stays as history, and the customer's ETA is Erik's stop, not Wanda's old one."""
    west = await on_shift(db, "Wanda", 1, WEST)
    east = await on_shift(db, "Erik", 2, EAST)
    order = await order_at(db, "F", near(WEST, 1))
    service, driver = planner(db), Stops(db)
    wanda = Actor.member(west.member_id)
    await service.assign_manually(order.id, west.id, BOSS)
    [first] = await stops_of(db, order.id)
    await driver.arrive(west.id, order.id, wanda)
    await driver.fail(west.id, order.id, "not_home", wanda)
    later = Window(NOW + timedelta(hours=3), NOW + timedelta(hours=5))
    await orders.change_status(db, order.id, S.RESCHEDULED, BOSS, Change(windows=[later]))
    await service.assign_manually(order.id, east.id, BOSS)

    visited, current = await stops_of(db, order.id)
    assert await route_driver(db, current) == east.id and current.eta != first.eta
    async with db.sessions() as session:
        assert await delivery_eta(session, order.id) == current.eta  # Erik's, not Wanda's
    assert visited.id == first.id and visited.actual_arrival is not None
    assert visited.actual_departure is not None  # the failed visit is closed, kept
    assert current.actual_departure is None


async def test_undo_opens_the_visit_again_and_leaving_her_takes_the_stop_off(db: Database):
    west = await on_shift(db, "Wanda", 1, WEST)
    order, other = await order_at(db, "U", near(WEST, 1)), await order_at(db, "V", near(WEST, 2))
    service, driver = planner(db), Stops(db)
    wanda = Actor.member(west.member_id)
    for made in (order, other):
        await service.assign_manually(made.id, west.id, BOSS)
    assert len(await stops_of(db, other.id)) == 1
    await move(db, other.id, S.NEW)  # unassigned: off her route, and no longer locked
    assert await stops_of(db, other.id) == []
    async with db.sessions() as session:
        saved = await session.get(Order, other.id)
        assert saved is not None and not saved.driver_locked and saved.driver_id is None
    await driver.arrive(west.id, order.id, wanda)
    [stop] = await stops_of(db, order.id)
    assert stop.actual_arrival is not None and stop.actual_departure is None
    await driver.undo(west.id, order.id, wanda, within=timedelta(minutes=5))
    [stop] = await stops_of(db, order.id)
    assert (stop.actual_arrival, stop.actual_departure) == (None, None)  # not there after all

    await driver.deliver(west.id, order.id, wanda)
    [stop] = await stops_of(db, order.id)
    assert stop.actual_arrival is not None and stop.actual_departure is not None
    await driver.undo(west.id, order.id, wanda, within=timedelta(minutes=5))
    [stop] = await stops_of(db, order.id)
    assert stop.actual_arrival is not None and stop.actual_departure is None  # at the door again
    async with db.sessions() as session:
        assert await delivery_eta(session, order.id) == stop.eta


async def test_the_migration_repairs_stops_before_making_open_ones_unique(db: Database):
    """Rows the old code left: a re-planned stop beside the one being visited, a stop on a
    driver's route after the order went to another, a failed visit never closed, a stop of an
    order sent back to dispatch. The migration keeps one open stop each, then adds the index."""
    west = await on_shift(db, "Wanda", 1, WEST)
    east = await on_shift(db, "Erik", 2, EAST)
    made = [await order_at(db, f"M{k}", near(WEST, k)) for k in range(1, 6)]
    arrived, moved, failed, back, done = (o.id for o in made)
    for order_id, driver_id in ((arrived, west.id), (moved, east.id), (failed, west.id)):
        await move(db, order_id, S.ASSIGNED, driver_id)
    for order_id, target in ((arrived, S.ARRIVED), (failed, S.FAILED)):
        await move(db, order_id, S.OUT_FOR_DELIVERY)
        await move(db, order_id, target)
    await move(db, done, S.ASSIGNED, west.id)
    for target in (S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED):
        await move(db, done, target)
    async with db.engine.begin() as connection:  # as before the revision
        await connection.execute(sa.text("DROP INDEX uq_route_stops_open"))
    async with db.transaction() as session:
        routes = {}
        for driver_id in (west.id, east.id):
            routes[driver_id] = Route(driver_id=driver_id, service_date=NOW.date())
            session.add(routes[driver_id])
        await session.flush()
        rows = [  # (name, order, driver's route, arrived, departed)
            ("arrived visit", arrived, west.id, True, False),
            ("arrived re-plan", arrived, west.id, False, False),
            ("moved, her stop", moved, east.id, False, False),
            ("moved, old stop", moved, west.id, False, False),
            ("failed visit", failed, west.id, True, False),
            ("back to dispatch", back, west.id, False, False),
            ("delivered visit", done, west.id, True, True),
        ]
        saved = {}
        for sequence, (name, order_id, driver_id, arrival, departure) in enumerate(rows):
            saved[name] = RouteStop(
                route_id=routes[driver_id].id, order_id=order_id, sequence=sequence,
                actual_arrival=NOW if arrival else None,
                actual_departure=NOW if departure else None,
            )  # fmt: skip
            session.add(saved[name])
    ids = {name: row.id for name, row in saved.items()}

    script = ScriptDirectory.from_config(alembic_config()).get_revision(REVISION)
    async with db.engine.begin() as connection:

        def upgrade(sync: sa.Connection) -> None:
            with Operations.context(MigrationContext.configure(sync)):
                script.module.upgrade()

        await connection.run_sync(upgrade)

    async with db.sessions() as session:
        left = {r.id: r for r in await session.exec(select(RouteStop))}
    name_of = {v: k for k, v in ids.items()}
    assert sorted(name_of[i] for i in left) == sorted(
        ["arrived visit", "moved, her stop", "failed visit", "delivered visit"]
    )
    assert left[ids["failed visit"]].actual_departure == NOW  # closed, kept as history
    assert left[ids["arrived visit"]].actual_departure is None  # she is at that door
    with pytest.raises(sa.exc.IntegrityError):
        async with db.transaction() as session:
            route = routes[west.id]
            session.add(RouteStop(route_id=route.id, order_id=arrived, sequence=9))
