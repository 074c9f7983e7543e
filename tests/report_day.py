"""A known day for the reports, written straight into the database with fixed times: Tuesday
2026-11-24 in Europe/Berlin (UTC+1), with orders, status changes, shifts, pings, routes and
outbox rows on both sides of local midnight, and 7 delivered orders on 2026-11-20 to compare with.
tests/test_reports.py computes every metric of it by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.db import Database
from core.models import (
    Customer,
    Driver,
    LocationPing,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    OutboxMessage,
    OutboxStatus,
    Route,
    Shift,
)

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 24)
S = OrderStatus


def at(d: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A local time in Berlin on 2026-`month`-`d`."""
    return datetime(2026, month, d, hour, minute, tzinfo=BERLIN)


@dataclass
class Writer:
    db: Database
    drivers: dict[str, int] = field(default_factory=dict)
    member_id: int = 0

    async def people(self, *names: str) -> None:
        async with self.db.transaction() as session:
            owner = Member(name="Olga Owner")
            session.add(owner)
            await session.flush()
            self.member_id = owner.id or 0
            for name in names:
                member = Member(name=f"{name} Driver")
                session.add(member)
                await session.flush()
                driver = Driver(member_id=member.id)
                session.add(driver)
                await session.flush()
                self.drivers[name] = driver.id or 0

    async def order(
        self,
        ref: str,
        customer: str,
        created: datetime,
        window: tuple[datetime, datetime] | None,
        changes: list[tuple[OrderStatus, datetime, dict[str, Any]]],
        *,
        driver: str | None = None,
        rating: int | None = None,
        status: OrderStatus | None = None,
    ) -> None:
        """An order and its status changes (`status`: when it ends elsewhere than its last)."""
        final = status or (changes[-1][0] if changes else S.NEW)
        attempts = sum(1 for s, _, _ in changes if s is S.OUT_FOR_DELIVERY)
        ended = [when for s, when, _ in changes if s in (S.DELIVERED, S.RETURNED, S.CANCELLED)]
        async with self.db.transaction() as session:
            person = Customer(name=f"{customer} Example")
            session.add(person)
            await session.flush()
            row = Order(
                external_ref=ref,
                customer_id=person.id,
                address="Hauptstr. 5, Berlin",
                status=final,
                attempts=attempts,
                driver_id=self.drivers[driver] if driver else None,
                created_at=created,
                updated_at=created,
                final_at=ended[-1] if ended else None,
                rating=rating,
            )
            session.add(row)
            await session.flush()
            if window:
                session.add(OrderWindow(order_id=row.id, starts_at=window[0], ends_at=window[1]))
            session.add(
                OrderEvent(order_id=row.id, kind="created", actor="test", created_at=created)
            )
            for target, when, data in changes:
                session.add(
                    OrderEvent(
                        order_id=row.id,
                        kind="status_changed",
                        to_status=target,
                        actor="test",
                        data=data,
                        created_at=when,
                    )
                )

    async def shift(self, driver: str, start: datetime, end: datetime | None) -> None:
        async with self.db.transaction() as session:
            session.add(Shift(driver_id=self.drivers[driver], started_at=start, ended_at=end))

    async def pings(self, driver: str, *points: tuple[datetime, float, float]) -> None:
        async with self.db.transaction() as session:
            for when, lat, lon in points:
                session.add(
                    LocationPing(driver_id=self.drivers[driver], lat=lat, lon=lon, recorded_at=when)
                )

    async def route(self, driver: str, day: date, metres: int, drive_s: int) -> None:
        async with self.db.transaction() as session:
            session.add(
                Route(
                    driver_id=self.drivers[driver],
                    service_date=day,
                    planned_distance_m=metres,
                    planned_duration_s=drive_s * 2,
                    planned_drive_s=drive_s,
                )
            )

    async def notice(self, status: OutboxStatus, created: datetime, key: str) -> None:
        async with self.db.transaction() as session:
            session.add(
                OutboxMessage(
                    recipient_member_id=self.member_id,
                    template="customer.order_confirmed",
                    idempotency_key=key,
                    status=status,
                    created_at=created,
                )
            )


def out(when: datetime) -> tuple[OrderStatus, datetime, dict[str, Any]]:
    return (S.OUT_FOR_DELIVERY, when, {})


def done(target: OrderStatus, when: datetime, **data: Any) -> tuple[OrderStatus, datetime, dict]:
    return (target, when, data)


async def write_day(db: Database) -> Writer:
    """The known day (see the module's docstring and tests/test_reports.py)."""
    w = Writer(db)
    await w.people("Anna", "Ben")
    D = S.DELIVERED
    await w.order(
        "A-1", "Carla", at(24, 8), (at(24, 10), at(24, 12)),
        [out(at(24, 10, 30)), done(D, at(24, 11))], driver="Anna", rating=5,
    )  # fmt: skip
    await w.order(
        "A-2", "Dora", at(24, 8, 30), (at(24, 10), at(24, 11)),
        [out(at(24, 10, 40)), done(D, at(24, 11, 30))], driver="Anna", rating=3,
    )  # fmt: skip
    await w.order(
        "A-3", "Emil", at(23, 22), (at(24, 13), at(24, 15)),
        [
            out(at(24, 12)), done(S.FAILED, at(24, 12, 20), reason="nobody home",
                                  reason_code="not_home"),
            (S.RESCHEDULED, at(24, 12, 30), {}), (S.ASSIGNED, at(24, 12, 31), {}),
            out(at(24, 14)), done(D, at(24, 14, 30)),
        ],
        driver="Ben",
    )  # fmt: skip
    await w.order(
        "A-4", "Fritz", at(24, 9), (at(24, 15), at(24, 17)),
        [out(at(24, 15)), done(S.FAILED, at(24, 15, 10), reason_code="refused"),
         done(S.RETURNED, at(24, 16))],
        driver="Ben",
    )  # fmt: skip
    await w.order(
        "A-5", "Gina", at(24, 10), (at(24, 18), at(24, 20)),
        [(S.ASSIGNED, at(24, 10, 5), {})], driver="Ben",
    )  # fmt: skip
    # delivered at 00:30 local on the 24th: 23:30 UTC on the 23rd, and it is the 24th's
    await w.order(
        "A-7", "Hans", at(23, 20), (at(23, 23), at(24, 1)),
        [out(at(24, 0, 10)), done(D, at(24, 0, 30))], driver="Anna", rating=4,
    )  # fmt: skip
    # all of it after local midnight: the 25th, though its UTC times are on the 24th
    await w.order(
        "A-8", "Ida", at(25, 0, 5), (at(25, 0), at(25, 2)),
        [out(at(25, 0, 10)), done(D, at(25, 0, 30))], driver="Ben", rating=1,
    )  # fmt: skip
    await w.order("A-9", "Jana", at(24, 9), None, [done(S.CANCELLED, at(24, 9, 30))])
    await w.order(
        "A-10", "Karl", at(24, 7), (at(24, 9), at(24, 10)),
        [out(at(24, 9)), done(S.FAILED, at(24, 9, 30), reason="dog in the garden",
                              reason_code="other")],
        driver="Anna",
    )  # fmt: skip
    # shifts: Anna's night shift crosses midnight; Ben's evening shift is still open
    await w.shift("Anna", at(23, 10), at(23, 12))  # another day
    await w.shift("Anna", at(23, 22), at(24, 2))
    await w.shift("Anna", at(24, 9), at(24, 13))
    await w.shift("Ben", at(24, 11, 30), at(24, 17, 30))
    await w.shift("Ben", at(24, 20), None)
    await w.pings(
        "Anna",
        (at(23, 23, 50), 52.4910, 13.4000),  # the day before
        (at(24, 0, 10), 52.5000, 13.4000),
        (at(24, 0, 20), 52.5090, 13.4000),  # north 0.009°: moving
        (at(24, 8), 52.4000, 13.3000),  # off shift
        (at(24, 9), 52.5000, 13.4000),
        (at(24, 9, 10), 52.5090, 13.4000),  # moving
        (at(24, 9, 20), 52.5090, 13.4000),  # standing
        (at(24, 9, 30), 52.5090, 13.4001),  # a few metres: standing
        (at(24, 9, 40), 52.5180, 13.4001),  # moving
        (at(24, 13, 30), 52.6000, 13.5000),  # off shift
    )
    await w.pings(
        "Ben",
        (at(24, 12), 52.5200, 13.4000),
        (at(24, 12, 5), 52.5200, 13.4100),  # east 0.01° in 5 minutes: moving
        (at(25, 0, 30), 52.6000, 13.4100),  # the next day
    )
    await w.route("Anna", DAY, 12_000, 2_400)
    await w.route("Ben", DAY, 8_000, 1_800)
    await w.route("Ben", date(2026, 11, 25), 5_000, 900)
    await w.notice(OutboxStatus.DEAD, at(24, 9), "n1")
    await w.notice(OutboxStatus.SKIPPED, at(24, 10), "n2")
    await w.notice(OutboxStatus.SENT, at(24, 11), "n3")
    await w.notice(OutboxStatus.DEAD, at(25, 0, 30), "n4")  # the next day
    # 2026-11-20: 7 deliveries on time, first attempt, rated 5, by Anna on a 2-hour shift
    for n in range(7):
        await w.order(
            f"B-{n}", "Lena", at(20, 9), (at(20, 9), at(20, 12)),
            [out(at(20, 9, 30)), done(D, at(20, 10))], driver="Anna", rating=5,
        )  # fmt: skip
    await w.shift("Anna", at(20, 9), at(20, 11))
    return w
