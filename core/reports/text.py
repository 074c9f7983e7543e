"""The report's text: the period's numbers as people read them, each compared figure with an
arrow against the days before."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from core.drivers.stops import FAIL_REASONS
from core.reports.metrics import Metrics
from core.texts import days, t

if TYPE_CHECKING:
    from core.reports.periods import Period

COMPARED_WITH = {
    "day": "report.compared.day",
    "week": "report.compared.week",
    "days": "report.compared.days",
}


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
        ),
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
