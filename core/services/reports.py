"""TEMPORARY stand-in with the interface agreed with the reports helper (i12-reports owns this
file; its version replaces this one at merge). Only the signatures matter here."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from PIL import Image
from sqlmodel import col, func, select

from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.models import Order, OrderStatus


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    kind: str


def day(d: date, zone: tzinfo) -> Period:
    start = datetime.combine(d, time(), zone)
    end = datetime.combine(d + timedelta(days=1), time(), zone)
    return Period(start, end, "day")


def week(monday: date, zone: tzinfo) -> Period:
    start = datetime.combine(monday, time(), zone)
    return Period(start, datetime.combine(monday + timedelta(days=7), time(), zone), "week")


def named(text: str, now: datetime, zone: tzinfo) -> Period:
    today = now.astimezone(zone).date()
    if text == "today":
        return day(today, zone)
    if text == "yesterday":
        return day(today - timedelta(days=1), zone)
    raise DomainError("board.report_period", period=text)


@dataclass(frozen=True)
class ReportFiles:
    text: str
    chart_png: bytes
    chart_name: str
    csv: bytes
    csv_name: str


async def build(db: Database, settings: Settings, period: Period, lang: str) -> ReportFiles:
    async with db.reads() as session:
        delivered = (
            await session.exec(
                select(func.count())
                .select_from(Order)
                .where(
                    Order.status == OrderStatus.DELIVERED,
                    col(Order.final_at) >= period.start,
                    col(Order.final_at) < period.end,
                )
            )
        ).one()
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (255, 255, 255)).save(buffer, "PNG")
    name = f"lastmile-{period.start.date().isoformat()}"
    csv = f"reference,status\n{delivered}\n".encode()
    return ReportFiles(
        f"Delivered: {delivered}", buffer.getvalue(), f"{name}.png", csv, f"{name}.csv"
    )
