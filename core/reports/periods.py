"""The report of a day or a week: its text (against the days before, with arrows), one chart
(PNG) and a CSV of its orders. The same for `/report` in chat, `lastmile report` and the pushed
daily and weekly reports."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.models import OrderStatus
from core.reports import chart as report_chart
from core.reports import rows as report_rows
from core.reports.metrics import COMPARED, Rows, compute, on_time, period_orders
from core.reports.text import label, reason_words, text

S = OrderStatus
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
WEEK = re.compile(r"(\d{4})-W(\d{2})")
FIRST_YEAR, LAST_YEAR = 2000, 2999  # dates a report may ask for
CSV_HEADER = (
    "reference",
    "customer",
    "status",
    "window",
    "delivered_at",
    "on_time",
    "attempts",
    "driver",
    "failure_reason",
    "rating",
)


@dataclass(frozen=True)
class Period:
    """Local days [start, end) as aware datetimes in APP_TIMEZONE."""

    start: datetime
    end: datetime
    kind: str  # "day" | "week" | "days"


@dataclass(frozen=True)
class ReportFiles:
    text: str  # ready to send, in `lang`
    chart_png: bytes
    chart_name: str  # e.g. "lastmile-2026-12-07.png"
    csv: bytes  # UTF-8, header row + one row per order
    csv_name: str  # e.g. "lastmile-2026-12-07.csv"


def midnight(d: date, zone: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=zone)


def day(d: date, zone: tzinfo) -> Period:
    """One local day: 23 or 25 hours when the clocks change."""
    return Period(midnight(d, zone), midnight(d + timedelta(days=1), zone), "day")


def week(monday: date, zone: tzinfo) -> Period:
    """Monday to Sunday of the week holding `monday`."""
    first = monday - timedelta(days=monday.weekday())
    return Period(midnight(first, zone), midnight(first + timedelta(days=7), zone), "week")


def last_days(last: date, zone: tzinfo, count: int = 7) -> Period:
    """`count` local days up to and including `last`."""
    first = last - timedelta(days=count - 1)
    return Period(midnight(first, zone), midnight(last + timedelta(days=1), zone), "days")


def named(text: str, now: datetime, zone: tzinfo) -> Period:
    """today | yesterday | 7d | YYYY-MM-DD | YYYY-Www (an ISO week); a DomainError otherwise."""
    word = " ".join(text.split()).lower()
    today = now.astimezone(zone).date()
    if word in ("", "today"):
        return day(today, zone)
    if word == "yesterday":
        return day(today - timedelta(days=1), zone)
    if word == "7d":
        return last_days(today, zone)
    try:
        if DATE.fullmatch(word) and FIRST_YEAR <= int(word[:4]) <= LAST_YEAR:
            return day(date.fromisoformat(word), zone)
    except ValueError:
        pass  # 2026-02-30: not a day
    if (period := _iso_week(word, zone)) is not None:
        return period
    raise DomainError("report.bad_period", text=_shown(text))


def _iso_week(word: str, zone: tzinfo) -> Period | None:
    """YYYY-Www as a week, or None (week 54, another year range, another word)."""
    if (found := WEEK.fullmatch(word.upper())) and FIRST_YEAR <= int(found[1]) <= LAST_YEAR:
        try:
            return week(date.fromisocalendar(int(found[1]), int(found[2]), 1), zone)
        except ValueError:
            return None
    return None


def named_day(text: str, now: datetime, zone: tzinfo) -> Period:
    """today | yesterday | YYYY-MM-DD; a DomainError otherwise."""
    word = text.strip().lower()
    try:
        if word in ("today", "yesterday") or DATE.fullmatch(word):
            return named(word, now, zone)
    except DomainError:
        pass
    raise DomainError("report.bad_date", text=_shown(text))


def named_week(text: str, zone: tzinfo) -> Period:
    """An ISO week, YYYY-Www; a DomainError otherwise."""
    if (period := _iso_week(text.strip(), zone)) is not None:
        return period
    raise DomainError("report.bad_week", text=_shown(text))


def _shown(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:40]}…"


def previous(period: Period, zone: tzinfo) -> list[Period]:
    """What a period is compared with: a day with each of the 7 days before, a week or 7 days
    with the 7 days before them."""
    first = period.start.date()
    if period.kind == "day":
        return [day(first - timedelta(days=n), zone) for n in range(7, 0, -1)]
    return [last_days(first - timedelta(days=1), zone)]


async def build(
    db: Database, settings: Settings, period: Period, lang: str, *, now: datetime | None = None
) -> ReportFiles:
    """The report of `period`: metrics (and the comparison), text, chart and CSV."""
    zone = ZoneInfo(settings.app.timezone)
    now = now or db.now()
    before = previous(period, zone)
    rows, earlier = await asyncio.gather(  # two connections: the reads overlap
        report_rows.load(db, period.start, period.end, now),
        report_rows.compared(db, [(p.start, p.end) for p in before], now),
    )
    metrics = compute(rows, period.start, period.end, zone)
    chart = asyncio.create_task(
        asyncio.to_thread(report_chart.render, metrics, label(period, lang))
    )
    try:
        baseline = average(earlier)
        table = orders_csv(rows, period, zone, lang)
    finally:
        png = await chart
    name = file_stem(period)
    return ReportFiles(
        text=text(metrics, baseline, period, lang),
        chart_png=png,
        chart_name=f"{name}.png",
        csv=table,
        csv_name=f"{name}.csv",
    )


def average(days_figures: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The average of each compared figure over the days that have it."""
    result: dict[str, float | None] = {}
    for name in COMPARED:
        values = [v for f in days_figures if (v := f[name]) is not None]
        result[name] = sum(values) / len(values) if values else None
    return result


def file_stem(period: Period) -> str:
    first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
    if period.kind == "day":
        return f"lastmile-{first.isoformat()}"
    if period.kind == "week":
        year, number, _ = first.isocalendar()
        return f"lastmile-{year}-W{number:02d}"
    return f"lastmile-{first.isoformat()}--{last.isoformat()}"


def orders_csv(rows: Rows, period: Period, zone: tzinfo, lang: str) -> bytes:
    """One row per order of the period (`metrics.belongs`), by number; local times."""
    events = rows.by_order
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for order in period_orders(rows, period.start, period.end):
        mine = events.get(order.id, [])
        delivered = next((e.at for e in mine if e.status is S.DELIVERED), None)
        failures = [e.reason or "other" for e in mine if e.status is S.FAILED]
        window = order.windows[0] if order.windows else None
        writer.writerow(
            (
                order.ref,
                order.customer,
                order.status.value,
                local_span(window, zone) if window else "",
                local(delivered, zone) if delivered else "",
                ("yes" if on_time(order, delivered) else "no") if delivered else "",
                order.attempts,
                rows.drivers.get(order.driver_id, "") if order.driver_id else "",
                reason_words(failures[-1], lang) if failures else "",
                order.rating if order.rating is not None else "",
            )
        )
    return out.getvalue().encode("utf-8")


def local(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def local_span(window: tuple[datetime, datetime], zone: tzinfo) -> str:
    a, b = (w.astimezone(zone) for w in window)
    return f"{local(a, zone)}–{b.strftime('%H:%M') if a.date() == b.date() else local(b, zone)}"
