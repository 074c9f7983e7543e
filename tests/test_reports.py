"""The reports: every metric of a known day (tests/report_day.py) computed here by hand, a day
across local midnight in Berlin, the DST days, the text, the chart, the CSV, the periods people
can name, and `/report` in chat and `lastmile report` giving the same."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import os
import struct
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.models import Order, OrderEvent, OrderStatus, Role
from core.reports import periods
from core.reports import rows as report_rows
from core.reports.metrics import compared, compute
from core.routing.travel import EARTH_RADIUS_M
from tests.fakes import telegram_updates as tu
from tests.report_day import BERLIN, DAY, at, write_day
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
NOW = at(25, 8)  # the morning after: Ben's evening shift is still open
R = EARTH_RADIUS_M


def settings(tmp_path: Path) -> Settings:
    return Settings(
        app={"timezone": "Europe/Berlin", "data_dir": tmp_path},
        _env_file=None,  # type: ignore[call-arg]
    )


def north(degrees: float) -> float:
    """Metres of a step due north (haversine: R × Δφ exactly)."""
    return R * math.radians(degrees)


def east(degrees: float, lat: float) -> float:
    """Metres of a step due east at `lat` (haversine with Δφ = 0)."""
    return 2 * R * math.asin(math.cos(math.radians(lat)) * math.sin(math.radians(degrees) / 2))


async def test_every_metric_of_the_known_day_by_hand(db: Database):
    await write_day(db)
    period = periods.day(DAY, BERLIN)
    assert period.start == datetime(2026, 11, 23, 23, tzinfo=UTC)  # local midnight, UTC+1
    assert period.end == datetime(2026, 11, 24, 23, tzinfo=UTC)
    rows = await report_rows.load(db, period.start, period.end, NOW)
    m = compute(rows, period.start, period.end, BERLIN)

    # delivered in the day: and A-7 (00:30 local = 23:30 UTC the day before);
    # not A-8, delivered at 00:30 local on the 25th (23:30 UTC on the 24th)
    assert m.delivered == 4
    assert m.failed == 3  # A-3 nobody home, A-4 refused, A-10 the driver's own words
    assert m.failed_by_reason == {"not_home": 1, "other": 1, "refused": 1}
    assert m.returned == 1
    # on time: A-1 (11:00 in 10–12), A-3 (14:30 in 13–15), A-7 (00:30 in 23–01); A-2 late
    assert (m.on_time, m.on_time_rate) == (3, 3 / 4)
    # first attempt: of the 5 that ended (4 delivered + A-4 returned)
    assert (m.first_attempt, m.finished, m.first_attempt_rate) == (3, 5, 3 / 5)
    # created → delivered: A-1 3 h, A-2 3 h, A-3 16.5 h (made 22:00 the day before), A-7 4.5 h
    assert m.since_created.average == (180 + 180 + 990 + 270) / 4
    assert m.since_created.p90 == 990  # nearest rank: the 4th of 4
    # out for delivery (the last time) → delivered: 30, 50, 30 (14:00 → 14:30), 20
    assert m.since_out.average == (30 + 50 + 30 + 20) / 4
    assert m.since_out.p90 == 50
    # shifts inside the day: Anna 00:00–02:00 (began 22:00 the day before) and 09–13, Ben
    # 11:30–17:30 and 20:00–24:00 (still open at NOW); Anna's shift on the 23rd is not counted
    assert (m.shifts, m.shift_hours) == (4, 2 + 4 + 6 + 4)
    assert (m.per_shift, m.per_hour) == (4 / 4, 4 / 16)
    anna_m = 3 * north(0.009)  # 00:10→00:20, 09:00→09:10, 09:30→09:40; standing steps not
    ben_m = east(0.01, 52.52)  # 12:00→12:05
    assert m.drive_s == 3 * 600 + 300
    assert m.km == pytest.approx((anna_m + ben_m) / 1000, abs=1e-9)
    assert (m.planned_km, m.planned_drive_s) == (20.0, 2_400 + 1_800)  # not the 25th's route
    assert (m.rating, m.rated, m.rated_share) == ((5 + 3 + 4) / 3, 3, 3 / 4)
    assert m.notifications_lost == 2  # dead and skipped on the 24th; not sent, not the 25th
    assert m.still_open == 2  # A-5 assigned, A-10 failed; A-8 is not the day's
    assert [(d.name, d.delivered, d.shifts, d.hours) for d in m.drivers] == [
        ("Anna", 3, 2, 6.0),
        ("Ben", 1, 2, 10.0),
    ]
    assert [d.km for d in m.drivers] == pytest.approx([anna_m / 1000, ben_m / 1000])
    busy = {h: (d, t) for h, d, t in m.hourly if d}
    assert busy == {0: (1, 1), 11: (2, 1), 14: (1, 1)}  # local hours


async def test_the_report_text_against_the_7_days_before(db: Database, tmp_path: Path):
    await write_day(db)
    files = await periods.build(db, settings(tmp_path), periods.day(DAY, BERLIN), "en", now=NOW)
    # the 7 days before: 7 deliveries on the 20th (on time, first attempt, rated 5, made an
    # hour before, by Anna on one 2-hour shift); on the 23rd Anna was on shift 10–12 and
    # 22–24 (2 shifts, 4 h) without a delivery. Averages over the days that have a value.
    km = (3 * north(0.009) + east(0.01, 52.52)) / 1000
    assert files.text == "\n".join(
        [
            "📊 Report for Tue 24 Nov",
            "(arrows: against the average of the 7 days before)",
            "✅ Delivered: 4 ↑ 1",  # 7 / 7 days
            "❌ Failed attempts: 3 ↑ 0 (nobody home: 1, other: 1, refused by the recipient: 1)",
            "⏱ On time: 75% (3 of 4) ↓ 100%",
            "🎯 First attempt: 60% (3 of 5 finished) ↓ 100%",
            "🕒 Order to door: 6 h 45 min on average, 90% within 16 h 30 min",
            "🚚 Out for delivery to door: 32 min on average, 90% within 50 min",
            "👷 Deliveries per shift: 1.0 (4 shifts, 16.0 h) ↓ 3.5",  # (7/1 + 0/2) / 2
            "⚡ Deliveries per hour on shift: 0.2 ↓ 1.8",  # 4/16; (7/2 + 0/4) / 2 = 1.75
            f"🛣 Driven: 35 min, {km:.1f} km (planned: 1 h 10 min, 20.0 km)",
            "⭐ Rating: 4.0 (75% of deliveries rated) ↓ 5.0",
            "📭 Notifications not delivered: 2",
            "📦 Still open: 2",
            "Drivers:",
            f"• Anna: 3 delivered, 2 shifts, 6.0 h, {3 * north(0.009) / 1000:.1f} km",
            f"• Ben: 1 delivered, 2 shifts, 10.0 h, {east(0.01, 52.52) / 1000:.1f} km",
        ]
    )
    assert (files.chart_name, files.csv_name) == (
        "lastmile-2026-11-24.png",
        "lastmile-2026-11-24.csv",
    )


async def test_the_days_compared_with_are_counted_as_the_metrics_define(db: Database):
    """The 7 days a report is compared with are counted in SQL (`report_rows.compared`); on
    every day of the known week they agree with the metrics computed from the rows."""
    await write_day(db)
    async with db.transaction() as session:  # an undone delivery counts nowhere
        [a1] = list(await session.exec(select(Order.id).where(Order.external_ref == "A-1")))
        [event] = list(
            await session.exec(
                select(OrderEvent.id).where(
                    OrderEvent.order_id == a1, OrderEvent.to_status == S.DELIVERED
                )
            )
        )
        session.add(
            OrderEvent(order_id=a1, kind="status_undone", to_status=S.ARRIVED, actor="test",
                       data={"undone_event": event}, created_at=at(24, 11, 1))
        )  # fmt: skip
    days = [periods.day(date(2026, 11, d), BERLIN) for d in range(18, 26)]
    counted = await report_rows.compared(db, [(p.start, p.end) for p in days], NOW)
    for p, figures in zip(days, counted, strict=True):
        rows = await report_rows.load(db, p.start, p.end, NOW)
        assert figures == compared(compute(rows, p.start, p.end, BERLIN)), p
    assert counted[6]["delivered"] == 3  # the 24th; A-1 was undone
    assert counted[2]["delivered"] == 7  # the 20th
    assert counted[2]["per_shift"] == 7.0 and counted[5]["per_shift"] == 0.0  # the 23rd


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


async def test_the_chart_is_a_png_of_sensible_size_and_the_csv_has_each_order(
    db: Database, tmp_path: Path
):
    await write_day(db)
    files = await periods.build(db, settings(tmp_path), periods.day(DAY, BERLIN), "en", now=NOW)
    width, height = png_size(files.chart_png)
    assert 800 <= width <= 2000 and 600 <= height <= 1600, (width, height)
    assert 10_000 < len(files.chart_png) < 1_000_000

    table = list(csv.reader(io.StringIO(files.csv.decode("utf-8"))))
    assert table[0] == list(periods.CSV_HEADER)
    assert table[1:] == [
        ["A-1", "Carla", "delivered", "2026-11-24 10:00–12:00", "2026-11-24 11:00", "yes", "1",
         "Anna", "", "5"],
        ["A-2", "Dora", "delivered", "2026-11-24 10:00–11:00", "2026-11-24 11:30", "no", "1",
         "Anna", "", "3"],
        ["A-3", "Emil", "delivered", "2026-11-24 13:00–15:00", "2026-11-24 14:30", "yes", "2",
         "Ben", "nobody home", ""],
        ["A-4", "Fritz", "returned", "2026-11-24 15:00–17:00", "", "", "1", "Ben",
         "refused by the recipient", ""],
        ["A-5", "Gina", "assigned", "2026-11-24 18:00–20:00", "", "", "0", "Ben", "", ""],
        ["A-7", "Hans", "delivered", "2026-11-23 23:00–2026-11-24 01:00", "2026-11-24 00:30",
         "yes", "1", "Anna", "", "4"],
        ["A-9", "Jana", "cancelled", "", "", "", "0", "", "", ""],
        ["A-10", "Karl", "failed", "2026-11-24 09:00–10:00", "", "", "1", "Anna",
         "dog in the garden", ""],
    ]  # fmt: skip


async def test_a_dst_day_has_23_hours_and_the_autumn_one_25(db: Database):
    spring = periods.day(date(2026, 3, 29), BERLIN)
    assert spring.end.astimezone(UTC) - spring.start.astimezone(UTC) == timedelta(hours=23)
    autumn = periods.day(date(2026, 10, 25), BERLIN)
    assert autumn.end.astimezone(UTC) - autumn.start.astimezone(UTC) == timedelta(hours=25)

    w = await write_day(db)  # the people; the orders of November do not touch March
    local = lambda h, m=0: datetime(2026, 3, 29, h, m, tzinfo=BERLIN)  # noqa: E731
    await w.shift(
        "Ben", datetime(2026, 3, 28, 20, tzinfo=BERLIN), datetime(2026, 3, 30, 2, tzinfo=BERLIN)
    )
    for ref, delivered in (
        ("D-1", local(1, 30)),  # 00:30 UTC, before the clocks go forward
        ("D-2", local(3, 30)),  # 01:30 UTC, after: 02:00–03:00 does not exist
        ("D-3", local(23, 30)),  # 21:30 UTC
        ("D-4", datetime(2026, 3, 30, 0, 30, tzinfo=BERLIN)),  # 22:30 UTC on the 29th: the 30th
    ):
        created = delivered.astimezone(UTC) - timedelta(hours=2)  # 2 real hours earlier
        await w.order(
            ref, "Nora", created, None,
            [(S.OUT_FOR_DELIVERY, created, {}), (S.DELIVERED, delivered, {})], driver="Ben",
        )  # fmt: skip
    rows = await report_rows.load(db, spring.start, spring.end, NOW)
    m = compute(rows, spring.start, spring.end, BERLIN)
    assert m.delivered == 3
    assert (m.shifts, m.shift_hours) == (1, 23.0)  # the whole day, which is 23 hours long
    assert m.per_hour == 3 / 23
    assert m.since_created.average == 120  # minutes of real time, across the change too
    assert {h: d for h, d, _ in m.hourly if d} == {1: 1, 3: 1, 23: 1}


def test_periods_people_can_name():
    now = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # already the 8th in Berlin
    assert periods.named("today", now, BERLIN) == periods.day(date(2026, 12, 8), BERLIN)
    assert periods.named(" Yesterday ", now, BERLIN) == periods.day(date(2026, 12, 7), BERLIN)
    seven = periods.named("7d", now, BERLIN)
    assert (seven.kind, seven.start.date(), seven.end.date()) == (
        "days",
        date(2026, 12, 2),
        date(2026, 12, 9),
    )
    assert periods.named("2026-03-29", now, BERLIN) == periods.day(date(2026, 3, 29), BERLIN)
    week = periods.named("2026-W49", now, BERLIN)
    assert (
        week == periods.week(date(2026, 11, 30), BERLIN) == periods.week(date(2026, 12, 3), BERLIN)
    )
    assert (week.kind, week.start.date(), week.end.date()) == (
        "week",
        date(2026, 11, 30),
        date(2026, 12, 7),
    )
    for bad in ("lastyear", "2026-02-30", "2026-13-01", "1999-12-31", "2026-W54", "7", "2026-1-5",
                "today!", "x" * 500, "2026-12-07 2026-12-08"):  # fmt: skip
        with pytest.raises(DomainError) as caught:
            periods.named(bad, now, BERLIN)
        assert caught.value.key == "report.bad_period"
        assert "is not a period: use today, yesterday, 7d" in str(caught.value)
    with pytest.raises(DomainError) as caught:
        periods.named("x" * 500, now, BERLIN)
    assert len(str(caught.value)) < 200


def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DATABASE_"))}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "APP_TIMEZONE": "Europe/Berlin",
        "APP_DATA_DIR": str(tmp_path / "data"),
    }


async def run_cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lastmile", "report", *args,
        env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_report_in_chat_and_on_the_command_line_agree(
    db: Database, database_url: str, tmp_path: Path
):
    await write_day(db)
    owner, _ = await add_person(db, 901, "Olga Owner", [Role.OWNER])
    folder = tmp_path / "out"
    code, printed, err = await run_cli(
        cli_env(database_url, tmp_path), tmp_path, "--date", "2026-11-24", "--out", str(folder)
    )
    assert code == 0, err
    png = (folder / "lastmile-2026-11-24.png").read_bytes()
    written = (folder / "lastmile-2026-11-24.csv").read_bytes()
    async with running_bot(
        db, tmp_path, clock=lambda: NOW, app={"timezone": "Europe/Berlin"}
    ) as bot:
        await bot.send(tu.command(owner, "/report", "2026-11-24"))
        text, photo, document = bot.fake.sent_to(901)[-3:]
        await bot.send(tu.command(owner, "/report", "2026-11-31"))
        refused = bot.texts(901)[-1]
    assert printed == text.text + "\n"
    assert text.text.startswith("📊 Report for Tue 24 Nov\n") and "✅ Delivered: 4 ↑ 1" in printed
    assert photo.method == "sendPhoto" and document.method == "sendDocument"
    assert png_size(photo.files["photo"]) == png_size(png)
    assert document.file_names["document"] == "lastmile-2026-11-24.csv"
    assert document.files["document"] == written  # the same bytes
    assert written.decode().count("\n") == 9  # the header and 8 orders
    assert refused == (
        "'2026-11-31' is not a period: use today, yesterday, 7d, a date like 2026-12-07 or a "
        "week like 2026-W49."
    )
    assert len(bot.fake.sent_to(901)) == 4  # nothing else was sent for the bad one


async def test_lastmile_report_refuses_bad_input_and_writes_nothing(
    database_url: str, tmp_path: Path
):
    env = cli_env(database_url, tmp_path)
    folder = tmp_path / "out"
    cases = {
        ("--date", "2026-02-30"): "'2026-02-30' is not a day: write it like 2026-12-07",
        ("--date", "7d"): "'7d' is not a day",
        ("--date", "24.11.2026"): "'24.11.2026' is not a day",
        ("--week", "2026-W54"): "'2026-W54' is not a week: write it like 2026-W49.",
        ("--week", "49"): "'49' is not a week",
        ("--date", "today", "--week", "2026-W49"): "Give --date or --week, not both.",
    }
    for args, message in cases.items():
        code, printed, err = await run_cli(env, tmp_path, *args, "--out", str(folder))
        assert (code, printed) == (2, ""), (args, err)
        assert message in err, (args, err)
    (tmp_path / "a-file").write_text("x")
    code, _, err = await run_cli(env, tmp_path, "--out", str(tmp_path / "a-file"))
    assert code == 2 and "is a file" in err, err
    assert not folder.exists()
    code, printed, err = await run_cli(env, tmp_path, "--week", "2026-w48", "--out", str(folder))
    assert code == 0, err
    assert printed.startswith("📊 Report for 2026-W48: Mon 23 Nov\u2009–\u2009Sun 29 Nov\n")
    assert "(arrows: against the week before)" in printed
    assert sorted(p.name for p in folder.iterdir()) == [
        "lastmile-2026-W48.csv",
        "lastmile-2026-W48.png",
    ]
