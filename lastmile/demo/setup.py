"""The demo's organisation, as a shop setting up Lastmile would have it before the day: an owner
and a dispatcher, a depot, the drivers with their vehicles, the customers (who follow the shop in
chat), an API key for the shop's system; every person a sandbox participant, each driver having told
her working hours (`/hours`) in her chat."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from bot.sandbox.channel import SandboxChannel
from core.conversations.events import Command
from core.merchants.apikeys import create_key
from core.models import Customer, Depot, Driver, Member, Role
from core.orders.service import normalize_phone
from core.people.customers import find_or_add_customer
from core.people.members import grant
from lastmile.demo.day import DayPlan, hour

OWNER = ("owner", "Olga Ribas")
DISPATCHER = ("dispatcher", "Dídac Pujol")


@dataclass(frozen=True)
class Organisation:
    api_key: str
    depot_id: int
    drivers: dict[str, int]  # sandbox key -> driver id
    members: dict[str, int]  # sandbox key -> member id


async def set_up(sandbox: SandboxChannel, day: DayPlan) -> Organisation:
    db = sandbox.services.db
    members: dict[str, int] = {}
    drivers: dict[str, int] = {}
    joining: list[tuple[str, int, str, str]] = []
    async with db.transaction() as session:
        depot = Depot(name="Eixample hub", address=day.depot.address, lat=day.depot.lat,
                      lon=day.depot.lon, timezone=day.grid.timezone)  # fmt: skip
        session.add(depot)
        await session.flush()
        assert depot.id is not None
        staff = [(*OWNER, (Role.OWNER, Role.DISPATCHER)), (*DISPATCHER, (Role.DISPATCHER,))]
        for key, name, roles in staff:
            member = Member(name=name)
            session.add(member)
            await session.flush()
            for role in roles:
                await grant(session, member, role)
            joining.append((key, member.id, name, roles[0].value))  # type: ignore[arg-type]
        for plan in day.drivers:
            member = Member(name=plan.name)
            session.add(member)
            await session.flush()
            await grant(session, member, Role.DRIVER)
            driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
            driver.depot_id, driver.vehicle_type = depot.id, plan.vehicle
            driver.capacity_kg = plan.capacity_kg
            session.add(driver)
            await session.flush()
            drivers[plan.key] = driver.id  # type: ignore[assignment]
            joining.append((plan.key, member.id, plan.name, Role.DRIVER.value))  # type: ignore[arg-type]
        for order in day.orders:
            member = Member(name=order.customer)
            session.add(member)
            await session.flush()
            await grant(session, member, Role.CUSTOMER)
            phone = normalize_phone(order.phone, None)
            customer: Customer = await find_or_add_customer(session, order.customer, phone)
            customer.member_id = member.id
            session.add(customer)
            joining.append((order.customer_key, member.id, order.customer, Role.CUSTOMER.value))  # type: ignore[arg-type]
    for key, member_id, name, role_name in joining:
        await sandbox.join(key, member_id, name, role_name)
        members[key] = member_id
    for plan in day.drivers:  # each tells her working hours, so the day is planned for them all
        hours = f"{hour(plan.starts):%H:%M}-{hour(plan.ends):%H:%M}"
        await sandbox.send(plan.key, Command("hours", hours))
    _, secret = await create_key(db, "Eixample shop")
    return Organisation(secret, depot.id, drivers, members)
