"""Building blocks for tests: people and orders made through the real services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import func, select

from core.db import Database
from core.models import (
    Customer,
    Driver,
    Member,
    MemberRole,
    Order,
    OrderEvent,
    OrderStatus,
    OutboxMessage,
    ProofKind,
    Role,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Actor, Change, Window
from core.orders.service import OrderDraft
from core.storage import Files, LocalStorage

S = OrderStatus
DAY = datetime(2026, 11, 24, tzinfo=UTC)


async def add_member(
    db: Database,
    name: str,
    roles: Sequence[Role] = (),
    *,
    telegram_chat_id: int | None = None,
    whatsapp_phone: str | None = None,
    active: bool = True,
) -> Member:
    async with db.transaction() as session:
        member = Member(
            name=name,
            telegram_user_id=telegram_chat_id,
            telegram_chat_id=telegram_chat_id,
            whatsapp_phone=whatsapp_phone,
            active=active,
        )
        session.add(member)
        await session.flush()
        for role in roles:
            session.add(MemberRole(member_id=member.id, role=role))
    return member


async def add_driver(db: Database, name: str, chat_id: int, *, active: bool = True) -> Driver:
    member = await add_member(db, name, [Role.DRIVER], telegram_chat_id=chat_id, active=active)
    async with db.transaction() as session:
        driver = Driver(member_id=member.id)
        session.add(driver)
    return driver


async def link_customer(db: Database, customer_id: int, member: Member) -> None:
    async with db.transaction() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        customer.member_id = member.id
        session.add(customer)


async def new_order(
    db: Database,
    *,
    ref: str | None = None,
    pickup: bool = False,
    proof: ProofKind = ProofKind.NONE,
    phone: str | None = None,
    actor: Actor = SYSTEM,
) -> Order:
    draft = OrderDraft(
        external_ref=ref,
        customer_name="Carla",
        customer_phone=phone,
        address="Hauptstr. 5, Berlin",
        lat=52.52,
        lon=13.40,
        pickup_address="Bakery, Torstr. 1" if pickup else None,
        windows=(Window(DAY.replace(hour=9), DAY.replace(hour=12)),),
        proof_required=proof,
    )
    return await orders.create_order(db, draft, actor, source="test")


def change_for(target: OrderStatus, driver_id: int | None) -> Change:
    """The parameters a transition to `target` needs."""
    if target is S.ASSIGNED:
        return Change(driver_id=driver_id)
    if target is S.FAILED:
        return Change(reason="nobody home")
    if target is S.RESCHEDULED:
        start = DAY + timedelta(days=1, hours=14)
        return Change(windows=[Window(start, start + timedelta(hours=3))])
    return Change()


async def move(
    db: Database, order_id: int, target: OrderStatus, driver_id: int | None = None
) -> OrderEvent:
    return await orders.change_status(db, order_id, target, SYSTEM, change_for(target, driver_id))


async def count(db: Database, model: type, *where: sa.ColumnElement[bool]) -> int:
    async with db.sessions() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


async def snapshot(db: Database, order_id: int) -> tuple[OrderStatus, int, int]:
    """(status, events, outbox rows) of an order."""
    async with db.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        status = order.status
    events = await count(db, OrderEvent, OrderEvent.order_id == order_id)
    rows = await count(db, OutboxMessage, OutboxMessage.order_id == order_id)
    return status, events, rows


def local_files(folder: Path) -> Files:
    """The local-folder storage an instance with `APP_DATA_DIR=folder` uses."""
    return Files(LocalStorage(folder))
