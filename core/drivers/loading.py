"""Parcels on board: once a driver has left the depot with her route, its parcels are in her van.

The parcels of her route (plain deliveries assigned to her; a pickup-and-delivery parcel is in
the van once picked up) get `Order.loaded_at`, and her route for the day `started_at`, when
- she taps "Loaded" on her route, or starts the route: `load_route()`;
- her live position first leaves her depot: more than `DEPOT_RADIUS_M` from it while her route
  of the day has stops and has not started: `check_departure()`, after a ping. Stops given to
  her later were not in the van when she left, so they stay free to move.
Re-plans may re-sequence an on-board parcel but never give it to another driver
(`world.on_board`); a dispatcher's `/assign` hands it over (the lifecycle clears the mark when
the order changes driver). Each loaded order gets a "loaded" order event.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from core.db import Database
from core.models import Depot, Driver, Order, OrderKind, OrderStatus, Route
from core.orders import lifecycle
from core.orders.lifecycle import Actor
from core.routing.travel import Point, haversine_m

DEPOT_RADIUS_M = 300.0  # further than this from her depot, a driver has left it


async def load_route(db: Database, driver_id: int, actor: Actor, *, now: datetime) -> list[int]:
    """Her route's parcels are on board now; returns the orders newly marked."""
    async with db.transaction() as session:
        driver = await session.exec(
            select(Driver).where(Driver.id == driver_id).with_for_update(key_share=True)
        )
        if driver.first() is None:
            return []
        statement = (
            select(Order)
            .where(
                Order.driver_id == driver_id,
                Order.status == OrderStatus.ASSIGNED,
                Order.kind == OrderKind.DELIVERY,
                col(Order.loaded_at).is_(None),
            )
            .order_by(col(Order.id))
            .with_for_update()
        )
        loaded = []
        for order in await session.exec(statement):
            order.loaded_at = now
            order.updated_at = now  # a plan read before this sees the order changed
            session.add(order)
            await lifecycle.note(session, order.id, "loaded", actor)  # type: ignore[arg-type]
            loaded.append(order.id)
        route = await _route_of(session, driver_id, now)
        if route is not None and route.started_at is None:
            route.started_at = now
            session.add(route)
    return loaded  # type: ignore[return-value]


async def check_departure(
    db: Database, driver_id: int, actor: Actor, *, now: datetime
) -> list[int]:
    """If her live position has left her depot with a route not started yet, load it."""
    async with db.reads() as session:
        driver = await session.get(Driver, driver_id)
        if driver is None or driver.depot_id is None or driver.last_lat is None:
            return []
        depot = await session.get(Depot, driver.depot_id)
        route = await _route_of(session, driver_id, now)
    if depot is None or route is None or route.started_at is not None:
        return []
    here = Point(driver.last_lat, driver.last_lon)  # type: ignore[arg-type]
    if float(haversine_m([here], [Point(depot.lat, depot.lon)])[0, 0]) <= DEPOT_RADIUS_M:
        return []
    return await load_route(db, driver_id, actor, now=now)


async def _route_of(session, driver_id: int, now: datetime) -> Route | None:
    statement = select(Route).where(Route.driver_id == driver_id, Route.service_date == now.date())
    return (await session.exec(statement)).first()
