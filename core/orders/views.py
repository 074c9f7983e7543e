"""Orders as an integration sees them (the REST API): a few queries per page, whatever its size."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.drivers.stops import OPEN, first_name
from core.models import (
    Customer,
    Driver,
    Member,
    Order,
    OrderStatus,
    OrderWindow,
    RouteStop,
    StopKind,
    open_stop,
    tracking_url,
)


class WindowView(BaseModel):
    start: datetime
    end: datetime
    stop: StopKind


class OrderView(BaseModel):
    """An order as an integration sees it (the REST API's `OrderOut` is this, documented)."""

    id: int
    external_ref: str | None
    status: OrderStatus
    customer_name: str
    customer_phone: str | None
    address: str
    lat: float | None
    lon: float | None
    due_date: date | None
    time_windows: Sequence[WindowView]  # (the API's OrderOut narrows it to its WindowOut)
    driver: str | None
    eta: datetime | None
    attempts: int
    tracking_url: str
    created_at: datetime
    updated_at: datetime


async def views_of(
    session: AsyncSession, orders: Sequence[Order], base_url: str
) -> list[OrderView]:
    """The view of each of `orders`, in the same order."""
    ids = [order.id for order in orders]
    if not ids:
        return []
    customers = {
        customer.id: customer
        for customer in await session.exec(
            select(Customer).where(col(Customer.id).in_({o.customer_id for o in orders}))
        )
    }
    windows: dict[int, list[WindowView]] = {}
    for window in await session.exec(
        select(OrderWindow)
        .where(col(OrderWindow.order_id).in_(ids))
        .order_by(col(OrderWindow.starts_at))
    ):
        windows.setdefault(window.order_id, []).append(
            WindowView(start=window.starts_at, end=window.ends_at, stop=window.stop)
        )
    open_ids = [order.id for order in orders if order.status in OPEN]
    etas = {}
    if open_ids:
        etas = dict(
            (
                await session.exec(
                    select(RouteStop.order_id, RouteStop.eta).where(
                        col(RouteStop.order_id).in_(open_ids),
                        RouteStop.kind == StopKind.DELIVERY,
                        open_stop(),
                    )
                )
            ).all()
        )
    driver_ids = {order.driver_id for order in orders if order.driver_id}
    names = dict(
        (
            await session.exec(
                select(Driver.id, Member.name)
                .join(Member, col(Member.id) == Driver.member_id)
                .where(col(Driver.id).in_(driver_ids))
            )
        ).all()
        if driver_ids
        else []
    )
    resources = []
    for order in orders:
        assert order.id is not None
        customer = customers.get(order.customer_id)
        resources.append(
            OrderView(
                id=order.id,
                external_ref=order.external_ref,
                status=order.status,
                customer_name=customer.name if customer else "",
                customer_phone=customer.phone if customer else None,
                address=order.address,
                lat=order.lat,
                lon=order.lon,
                due_date=order.due_date,
                time_windows=windows.get(order.id, []),
                driver=first_name(names[order.driver_id]) if order.driver_id in names else None,
                eta=etas.get(order.id),
                attempts=order.attempts,
                tracking_url=tracking_url(base_url, order.tracking_token),
                created_at=order.created_at,
                updated_at=order.updated_at,
            )
        )
    return resources


async def get_order(db: Database, order_id: int, base_url: str) -> OrderView | None:
    async with db.reads() as session:
        order = await session.get(Order, order_id)
        if order is None:
            return None
        return (await views_of(session, [order], base_url))[0]


async def orders_by_id(db: Database, ids: Sequence[int], base_url: str) -> dict[int, OrderView]:
    async with db.reads() as session:
        orders = list(await session.exec(select(Order).where(col(Order.id).in_(set(ids)))))
        resources = await views_of(session, orders, base_url)
    return {resource.id: resource for resource in resources}


async def list_orders(
    db: Database,
    base_url: str,
    *,
    status: OrderStatus | None,
    due_date: date | None,
    external_ref: str | None,
    after_id: int,
    limit: int,
) -> tuple[list[OrderView], int | None]:
    """One page of orders by id, and the id to continue after (None on the last page)."""
    statement = select(Order).where(col(Order.id) > after_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if due_date is not None:
        statement = statement.where(Order.due_date == due_date)
    if external_ref is not None:
        statement = statement.where(Order.external_ref == external_ref)
    async with db.reads() as session:
        rows = list(await session.exec(statement.order_by(col(Order.id)).limit(limit + 1)))
        page = rows[:limit]
        resources = await views_of(session, page, base_url)
    more = len(rows) > limit
    return resources, (page[-1].id if more and page else None)
