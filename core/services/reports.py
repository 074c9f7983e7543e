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
from core.models import OrderStatus, utcnow
from core.services import report_chart, report_rows
from core.services.metrics import Metrics, Rows, by_order, compute, on_time, period_orders
from core.services.stops import FAIL_REASONS
from core.texts import days, t

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
        if (found := WEEK.fullmatch(word.upper())) and FIRST_YEAR <= int(found[1]) <= LAST_YEAR:
            return week(date.fromisocalendar(int(found[1]), int(found[2]), 1), zone)
    except ValueError:
        pass  # 2026-02-30, week 54: not a day
    raise DomainError("report.bad_period", text=_shown(text))


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
    word = text.strip().upper()
    try:
        if WEEK.fullmatch(word):
            return named(word, datetime.now(zone), zone)
    except DomainError:
        pass
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
    now = now or utcnow()
    rows = await report_rows.load(db, period.start, period.end, now)
    metrics = compute(rows, period.start, period.end, zone)
    before = previous(period, zone)
    earlier = await report_rows.load(db, before[0].start, before[-1].end, now, driving=False)
    baseline = average([compute(earlier, p.start, p.end, zone) for p in before])
    chart = await asyncio.to_thread(report_chart.render, metrics, label(period, lang))
    name = file_stem(period)
    return ReportFiles(
        text=text(metrics, baseline, period, lang),
        chart_png=chart,
        chart_name=f"{name}.png",
        csv=orders_csv(rows, period, zone, lang),
        csv_name=f"{name}.csv",
    )


COMPARED_WITH = {
    "day": "report.compared.day",
    "week": "report.compared.week",
    "days": "report.compared.days",
}
COMPARED = (
    "delivered",
    "failed",
    "on_time_rate",
    "first_attempt_rate",
    "per_shift",
    "per_hour",
    "rating",
)


def average(days_metrics: list[Metrics]) -> dict[str, float | None]:
    """The average of each compared metric over the days that have it."""
    result: dict[str, float | None] = {}
    for name in COMPARED:
        values = [getattr(m, name) for m in days_metrics if getattr(m, name) is not None]
        result[name] = sum(values) / len(values) if values else None
    result["since_created"] = _mean([m.since_created.average for m in days_metrics])
    return result


def _mean(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def file_stem(period: Period) -> str:
    first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
    if period.kind == "day":
        return f"lastmile-{first.isoformat()}"
    if period.kind == "week":
        year, number, _ = first.isocalendar()
        return f"lastmile-{year}-W{number:02d}"
    return f"lastmile-{first.isoformat()}--{last.isoformat()}"


def label(period: Period, lang: str) -> str:
    """The period's days ("Mon 7 Dec", "Mon 30 Nov – Sun 6 Dec"), a week's number first."""
    first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
    shown = days(first, last, lang)
    if period.kind == "week":
        year, number, _ = first.isocalendar()
        return f"{year}-W{number:02d}: {shown}"
    return shown


# --- numbers as people read them ---


def count(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value != int(value) else str(int(value))


def share(value: float | None) -> str:
    return "–" if value is None else f"{round(value * 100)}%"


def duration(minutes: float | None) -> str:
    if minutes is None:
        return "–"
    whole = round(minutes)
    return f"{whole} min" if whole < 60 else f"{whole // 60} h {whole % 60:02d} min"


def one_place(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def trend(now: float | None, before: float | None, shown: object, lang: str) -> str:
    """↑ / ↓ / → and the earlier figure, as shown; nothing when either is missing."""
    if now is None or before is None:
        return ""
    a, b = round(now, 3), round(before, 3)
    arrow = "↑" if a > b else "↓" if a < b else "→"
    return t("report.trend", lang, arrow=arrow, before=shown)


def text(metrics: Metrics, before: dict[str, float | None], period: Period, lang: str) -> str:
    m, b = metrics, before
    reasons = ", ".join(
        t("report.reason", lang, reason=reason_words(code, lang), count=n)
        for code, n in m.failed_by_reason.items()
    )
    lines = [
        t("report.title", lang, period=label(period, lang)),
        t(COMPARED_WITH[period.kind], lang),
        t("report.delivered", lang, value=m.delivered)
        + trend(m.delivered, b["delivered"], count(b["delivered"]), lang),
        t("report.failed", lang, value=m.failed)
        + trend(m.failed, b["failed"], count(b["failed"]), lang)
        + (t("report.reasons", lang, reasons=reasons) if reasons else ""),
        t("report.on_time", lang, value=share(m.on_time_rate), count=m.on_time, of=m.delivered)
        + trend(m.on_time_rate, b["on_time_rate"], share(b["on_time_rate"]), lang),
        t(
            "report.first_attempt",
            lang,
            value=share(m.first_attempt_rate),
            count=m.first_attempt,
            of=m.finished,
        )
        + trend(
            m.first_attempt_rate, b["first_attempt_rate"], share(b["first_attempt_rate"]), lang
        ),
        t(
            "report.delivery_time",
            lang,
            average=duration(m.since_created.average),
            p90=duration(m.since_created.p90),
        )
        + trend(m.since_created.average, b["since_created"], duration(b["since_created"]), lang),
        t(
            "report.out_time",
            lang,
            average=duration(m.since_out.average),
            p90=duration(m.since_out.p90),
        ),
        t(
            "report.per_shift",
            lang,
            value=one_place(m.per_shift),
            shifts=m.shifts,
            hours=one_place(m.shift_hours),
        )
        + trend(m.per_shift, b["per_shift"], one_place(b["per_shift"]), lang),
        t("report.per_hour", lang, value=one_place(m.per_hour))
        + trend(m.per_hour, b["per_hour"], one_place(b["per_hour"]), lang),
        t(
            "report.driving",
            lang,
            drive=duration(m.drive_s / 60),
            km=one_place(m.km),
            planned_drive=duration(m.planned_drive_s / 60),
            planned_km=one_place(m.planned_km),
        ),
        t("report.rating", lang, value=one_place(m.rating), share=share(m.rated_share))
        + trend(m.rating, b["rating"], one_place(b["rating"]), lang),
        t("report.lost", lang, value=m.notifications_lost),
        t("report.open", lang, value=m.still_open),
    ]
    if m.drivers:
        lines.append(t("report.drivers", lang))
        lines += [
            t(
                "report.driver",
                lang,
                name=d.name,
                delivered=d.delivered,
                shifts=d.shifts,
                hours=one_place(d.hours),
                km=one_place(d.km),
            )
            for d in m.drivers[:DRIVER_LINES]
        ]
        if len(m.drivers) > DRIVER_LINES:
            lines.append(t("report.more_drivers", lang, count=len(m.drivers) - DRIVER_LINES))
    return "\n".join(lines)


DRIVER_LINES = 10  # the rest are in the chart and the CSV


def reason_words(code: str, lang: str) -> str:
    """A failure's reason as people read it: a listed reason's words, else the words given."""
    if code == "other":
        return t("report.other_reason", lang)
    return t(f"reason.{code}", lang) if code in FAIL_REASONS else code


def orders_csv(rows: Rows, period: Period, zone: tzinfo, lang: str) -> bytes:
    """One row per order of the period (`metrics.belongs`), by number; local times."""
    events = by_order(rows)
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
