"""What the demo's day came to, read from the database when it is over (the same metrics as the
owner's report: core.reports.metrics), and what naive dispatch would have driven for the same
orders: each order, as it arrives, to the driver whose last queued stop is nearest, served in
the order received (the baseline of bench/dispatch.py, on the demo's own travel model)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select

from core.db import Database
from core.models import Order, OrderStatus, OutboxMessage
from core.reports import rows as report_rows
from core.reports.metrics import compute
from core.reports.periods import Period
from core.routing.travel import Point, TravelProvider
from lastmile.demo.day import DayPlan

SERVICE_S = 4 * 60  # the simulated drivers' time at a door (lastmile.demo.people.SERVICE)


@dataclass(frozen=True)
class Driven:
    km: float
    drive_h: float
    on_time: int
    stops: int


@dataclass(frozen=True)
class Summary:
    orders: int
    delivered: int
    failed_attempts: int
    still_open: int
    on_time: int
    on_time_rate: float | None
    driven: Driven  # what the simulated drivers drove
    naive: Driven
    outbox: dict[str, int]  # status -> rows
    report_folder: str

    @property
    def nothing_lost(self) -> bool:
        return all(self.outbox.get(s, 0) == 0 for s in ("pending", "sending", "dead", "skipped"))

    def lines(self) -> list[str]:
        rate = f"{100 * self.on_time_rate:.1f} %" if self.on_time_rate is not None else "-"
        ours, naive = self.driven, self.naive

        def versus(a: float, b: float) -> str:
            return f"{100 * (a / b - 1):+.0f} %" if b else "-"

        sent = self.outbox.get("sent", 0)
        lost = {k: v for k, v in self.outbox.items() if k != "sent" and v}
        return [
            f"orders {self.orders}: delivered {self.delivered}, failed attempts "
            f"{self.failed_attempts}, still open {self.still_open}",
            f"on time: {self.on_time} of {self.delivered} delivered ({rate})",
            f"driven: {ours.km:.1f} km, {ours.drive_h:.2f} h of driving; naive dispatch: "
            f"{naive.km:.1f} km ({versus(ours.km, naive.km)}), {naive.drive_h:.2f} h "
            f"({versus(ours.drive_h, naive.drive_h)}), on time {naive.on_time} of {naive.stops}",
            f"notifications sent: {sent}; "
            + (
                "nothing lost (outbox: all sent, none dead)"
                if self.nothing_lost
                else f"NOT all sent: {lost}"
            ),
            f"report: {self.report_folder}",
        ]


async def outbox_counts(db: Database) -> dict[str, int]:
    async with db.reads() as session:
        statement = select(OutboxMessage.status, sa.func.count()).group_by(
            col(OutboxMessage.status)
        )
        return {str(status): int(n) for status, n in await session.exec(statement)}


async def read(
    db: Database, period: Period, now: datetime, zone: ZoneInfo, driven: Driven, naive: Driven,
    folder: str,
) -> Summary:  # fmt: skip
    rows = await report_rows.load(db, period.start, period.end, now)
    metrics = compute(rows, period.start, period.end, zone)
    async with db.reads() as session:
        orders = (await session.exec(select(sa.func.count()).select_from(Order))).one()
        final = (OrderStatus.DELIVERED, OrderStatus.RETURNED, OrderStatus.CANCELLED)
        still_open = (
            await session.exec(
                select(sa.func.count()).select_from(Order).where(col(Order.status).not_in(final))
            )
        ).one()
    return Summary(
        orders=int(orders),
        delivered=metrics.delivered,
        failed_attempts=metrics.failed,
        still_open=int(still_open),
        on_time=metrics.on_time,
        on_time_rate=metrics.on_time_rate,
        driven=driven,
        naive=naive,
        outbox=await outbox_counts(db),
        report_folder=folder,
    )


async def naive_dispatch(day: DayPlan, travel: TravelProvider, start: datetime) -> Driven:
    """Naive dispatch of the day's orders; times from `start` (the day's midnight, local)."""
    at = lambda hours: start + timedelta(hours=hours)  # noqa: E731
    depot = (day.depot.lat, day.depot.lon)
    queues: dict[int, list[tuple[tuple[float, float], tuple[float, float] | None]]] = {
        k: [] for k in range(len(day.drivers))
    }
    for order in sorted(day.orders, key=lambda o: o.arrives):
        first = order.pickup or order.door

        def last(k: int) -> tuple[float, float]:
            return queues[k][-1][0] if queues[k] else depot

        nearest = min(queues, key=lambda k: (last(k)[0] - first.lat) ** 2
                      + (last(k)[1] - first.lon) ** 2)  # fmt: skip
        if order.pickup is not None:
            queues[nearest].append(((order.pickup.lat, order.pickup.lon), None))
        queues[nearest].append(((order.door.lat, order.door.lon), order.window))
    metres = seconds = 0.0
    on_time = stops = 0
    for k, queue in queues.items():
        now, here = at(day.drivers[k].starts), depot
        for there, window in queue:
            leg = await travel.matrix([Point(*here)], [Point(*there)], depart_at=now)
            metres += float(leg.distances[0, 0])
            seconds += float(leg.durations[0, 0])
            now += timedelta(seconds=float(leg.durations[0, 0]))
            if window is not None:
                now = max(now, at(window[0]))
                stops += 1
                on_time += now <= at(window[1])
            now += timedelta(seconds=SERVICE_S)
            here = there
    return Driven(metres / 1000, seconds / 3600, on_time, stops)
