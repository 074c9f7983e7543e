"""The pushed report through the real Telegram adapter against the fake Bot API: at
REPORTS_DAILY_AT the owner's chat gets the text, the chart photo (a PNG) and the CSV document,
with the numbers of a small day computed here by hand; the owner stops and restarts them in chat.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image
from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.models import (
    Customer,
    Driver,
    JobRun,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    OutboxMessage,
    Role,
)
from tests.fakes import telegram_updates as tu
from tests.telegram_harness import add_person, running_bot

S = OrderStatus
BERLIN = ZoneInfo("Europe/Berlin")
OWNER, DISPATCHER = 801, 802


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in Berlin (UTC+1 in winter) in Nov/Dec 2026 (days past 30 are December)."""
    month, day = (12, day - 30) if day > 30 else (11, day)
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


async def add_order(
    db: Database,
    ref: str,
    driver_id: int,
    created: datetime,
    window: tuple[datetime, datetime],
    changes: list[tuple[OrderStatus, datetime, dict[str, Any]]],
    rating: int | None = None,
) -> None:
    """An order and its status changes written with fixed times (the clock is not real)."""
    final = changes[-1][0]
    async with db.transaction() as session:
        customer = Customer(name=f"Carla {ref}")
        session.add(customer)
        await session.flush()
        order = Order(
            external_ref=ref,
            customer_id=customer.id,
            address="Hauptstr. 5, Berlin",
            status=final,
            attempts=sum(1 for s, _, _ in changes if s is S.OUT_FOR_DELIVERY),
            driver_id=driver_id,
            created_at=created,
            updated_at=changes[-1][1],
            final_at=changes[-1][1] if final is S.DELIVERED else None,
            rating=rating,
        )
        session.add(order)
        await session.flush()
        session.add(OrderWindow(order_id=order.id, starts_at=window[0], ends_at=window[1]))
        session.add(OrderEvent(order_id=order.id, kind="created", actor="test", created_at=created))
        for status, when, data in changes:
            event = OrderEvent(
                order_id=order.id,
                kind="status_changed",
                to_status=status,
                actor="test",
                data=data,
                created_at=when,
            )
            session.add(event)


async def fixture_day(db: Database) -> None:
    """Tuesday 1 Dec 2026 in Berlin, and one delivery on Monday 30 Nov to compare with.

    By hand, for Tuesday: delivered 2 (R-1 in its window, R-2 after it): on time 1 of 2 = 50%,
    both at the first attempt (100%); failed 1 (nobody home), so 1 still open; order to door
    150 and 260 min: 3 h 25 min on average, p90 (nearest rank) 4 h 20 min; out for delivery to
    door 60 and 180 min: 2 h 00 min, p90 3 h 00 min; one rating, 5, on 1 of 2 deliveries (50%).
    The 7 days before: 1 delivery in all (1/7 a day, shown 0.1), on time and first attempt
    100%."""
    _, member = await add_person(db, 803, "Ana Driver", [Role.DRIVER])
    async with db.sessions() as session:
        statement = select(Driver.id).where(Driver.member_id == member.id)
        ana = (await session.exec(statement)).one()
    assert ana is not None
    out = S.OUT_FOR_DELIVERY
    await add_order(db, "R-0", ana, at(30, 10), (at(30, 10), at(30, 12)),
                    [(S.ASSIGNED, at(30, 10, 5), {}), (out, at(30, 10, 30), {}),
                     (S.DELIVERED, at(30, 11), {})])  # fmt: skip
    await add_order(db, "R-1", ana, at(31, 8), (at(31, 10), at(31, 12)),
                    [(S.ASSIGNED, at(31, 8, 5), {}), (out, at(31, 9, 30), {}),
                     (S.DELIVERED, at(31, 10, 30), {})], rating=5)  # fmt: skip
    await add_order(db, "R-2", ana, at(31, 8, 10), (at(31, 10), at(31, 12)),
                    [(S.ASSIGNED, at(31, 8, 15), {}), (out, at(31, 9, 30), {}),
                     (S.DELIVERED, at(31, 12, 30), {})])  # fmt: skip
    await add_order(db, "R-3", ana, at(31, 8, 20), (at(31, 13), at(31, 15)),
                    [(S.ASSIGNED, at(31, 8, 25), {}), (out, at(31, 12, 45), {}),
                     (S.FAILED, at(31, 13, 10), {"reason_code": "not_home"})])  # fmt: skip


async def wait_for_run(db: Database, job: str, count: int, wait_s: float = 30.0) -> None:
    for _ in range(int(wait_s / 0.05)):
        async with db.sessions() as session:
            statement = select(JobRun).where(JobRun.job == job, col(JobRun.finished_at).isnot(None))
            if len(list(await session.exec(statement))) >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} run(s) of {job} did not finish within {wait_s} s")


async def reports_off(db: Database, telegram_id: int) -> bool:
    async with db.sessions() as session:
        statement = select(Member.reports_off).where(Member.telegram_user_id == telegram_id)
        return (await session.exec(statement)).one()


async def test_at_the_configured_time_the_owner_gets_text_chart_and_csv(
    db: Database, tmp_path: Path
):
    owner, olga = await add_person(db, OWNER, "Olga Owner", [Role.OWNER])
    await add_person(db, DISPATCHER, "Dora Dispatcher", [Role.DISPATCHER])
    await fixture_day(db)
    now = [at(31, 19, 59).astimezone(UTC)]  # Tuesday, a minute before REPORTS_DAILY_AT
    async with running_bot(
        db,
        tmp_path,
        clock=lambda: now[0],
        app={"timezone": "Europe/Berlin"},
        reports={"daily_at": "20:00"},
        dispatch={"mode": "manual"},
    ) as bot:
        await wait_for_run(db, "alerts.check", 1)  # the service is up and its jobs ran
        await bot.outbox_settled()
        assert bot.fake.sent_to(OWNER) == []

        now[0] = at(31, 20).astimezone(UTC)
        bot.app.state.scheduler.wake()
        await wait_for_run(db, "reports.daily", 1)
        await bot.outbox_settled()
        text, chart, sheet = bot.fake.sent_to(OWNER)
        assert bot.fake.sent_to(DISPATCHER) == []

        assert text.method == "sendMessage"
        lines = (text.text or "").splitlines()
        assert lines[0] == "📊 Report for Tue 1 Dec"
        assert "✅ Delivered: 2 ↑ 0.1" in lines
        assert "❌ Failed attempts: 1 ↑ 0 (nobody home: 1)" in lines
        assert "⏱ On time: 50% (1 of 2) ↓ 100%" in lines
        assert "🎯 First attempt: 100% (2 of 2 finished) → 100%" in lines
        assert "🕒 Order to door: 3 h 25 min on average, 90% within 4 h 20 min" in lines
        assert "🚚 Out for delivery to door: 2 h 00 min on average, 90% within 3 h 00 min" in lines
        assert "📦 Still open: 1" in lines
        assert "⭐ Rating: 5.0 (50% of deliveries rated)" in lines
        assert bot.buttons(text) == [("Stop daily reports", "a:reports.off:0")]

        assert chart.method == "sendPhoto" and chart.text == "📊 Tue 1 Dec"
        png = chart.files["photo"]
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = Image.open(io.BytesIO(png)).size
        assert width >= 400 and height >= 300

        assert sheet.method == "sendDocument"
        assert sheet.file_names["document"] == "lastmile-2026-12-01.csv"
        assert sheet.text == "🗂 Tue 1 Dec: every order in a spreadsheet (CSV)"
        table = list(csv.DictReader(io.StringIO(sheet.files["document"].decode("utf-8"))))
        assert [(r["reference"], r["status"], r["on_time"], r["delivered_at"]) for r in table] == [
            ("R-1", "delivered", "yes", "2026-12-01 10:30"),
            ("R-2", "delivered", "no", "2026-12-01 12:30"),
            ("R-3", "failed", "", ""),
        ]
        assert [(r["customer"], r["driver"], r["rating"]) for r in table] == [
            ("Carla", "Ana", "5"),
            ("Carla", "Ana", ""),
            ("Carla", "Ana", ""),
        ]
        assert table[2]["failure_reason"] == "nobody home" and table[2]["attempts"] == "1"

        # the owner taps "Stop daily reports": the next evening brings nothing
        await bot.tap(owner, OWNER, text, "Stop daily reports")
        assert "Daily reports are off" in (bot.last(OWNER).text or "")
        assert await reports_off(db, OWNER)
        now[0] = at(32, 20).astimezone(UTC)
        bot.app.state.scheduler.wake()
        await wait_for_run(db, "reports.daily", 2)
        await bot.outbox_settled()
        assert len(bot.fake.sent_to(OWNER)) == 4  # three pushed, one answer
    async with db.sessions() as session:
        rows = list(await session.exec(select(OutboxMessage.idempotency_key)))
    assert sorted(k for k in rows if k.startswith("report:")) == sorted(
        f"report:2026-12-01:{olga.id}:{part}" for part in ("text", "chart", "csv")
    )


async def test_owners_switch_reports_off_and_on_in_chat(db: Database, tmp_path: Path):
    owner, _ = await add_person(db, OWNER, "Olga Owner", [Role.OWNER])
    dispatcher, _ = await add_person(db, DISPATCHER, "Dora Dispatcher", [Role.DISPATCHER])
    # the default report time, on a morning clock: the report itself is not due meanwhile
    morning = system_clock().replace(hour=10, minute=0)
    async with running_bot(
        db, tmp_path, dispatch={"mode": "manual"}, reports={}, clock=lambda: morning
    ) as bot:
        await bot.send(tu.command(owner, "/reports"))
        assert bot.last(OWNER).text == (
            "You get the day's report every day at 20:00 (on Mondays the last week's too). "
            "/reports off stops them."
        )
        await bot.send(tu.command(owner, "/reports", "off"))
        assert bot.last(OWNER).text == "Daily reports are off. /reports on starts them again."
        assert await reports_off(db, OWNER)

        for bad in ("maybe", "OFFF", "on please", "1"):
            await bot.send(tu.command(owner, "/reports", bad))
            assert bot.last(OWNER).text == f"Say /reports on or /reports off (not {bad!r})."
            assert await reports_off(db, OWNER)  # unchanged

        await bot.send(tu.command(owner, "/reports", "ON"))
        assert "You get the day's report every day at 20:00" in (bot.last(OWNER).text or "")
        assert not await reports_off(db, OWNER)

        await bot.send(tu.command(dispatcher, "/reports", "off"))
        assert bot.last(DISPATCHER).text == "Only owners get the pushed reports."
        assert not await reports_off(db, DISPATCHER)


async def test_a_row_names_its_file_under_the_data_dir_or_is_not_sent(db: Database, tmp_path: Path):
    """Files through the outbox: a document under APP_DATA_DIR is uploaded; one that is missing,
    or named outside APP_DATA_DIR, fails its row for good (nothing is sent); a missing chart
    photo leaves its caption as text."""
    _, member = await add_person(db, OWNER, "Olga Owner", [Role.OWNER])
    data = tmp_path / "data"
    (data / "reports").mkdir(parents=True)
    (data / "reports" / "ok.csv").write_bytes(b"reference\nR-1\n")
    (tmp_path / "secret.csv").write_bytes(b"not yours\n")
    rows = {
        "ok": ("owner.report_csv", {"document_path": "reports/ok.csv"}),
        "missing": ("owner.report_csv", {"document_path": "reports/gone.csv"}),
        "outside": ("owner.report_csv", {"document_path": "../secret.csv"}),
        "absolute": ("owner.report_csv", {"document_path": str(tmp_path / "secret.csv")}),
        "no chart": ("owner.report_chart", {"photo_path": "reports/gone.png"}),
    }
    async with db.transaction() as session:
        for key, (template, params) in rows.items():
            session.add(
                OutboxMessage(
                    recipient_member_id=member.id,
                    channel="telegram",
                    template=template,
                    params={"period": "Tue 1 Dec", **params},
                    idempotency_key=f"files:{key}",
                )
            )
    # Tomorrow morning, after these rows were stamped: from 20:00 to 4 h after it (on the wall
    # clock, with no clock given) the daily report job ran at start and the owner got that
    # day's report besides these rows.
    morning = (system_clock() + timedelta(days=1)).replace(hour=9, minute=0)
    async with running_bot(db, tmp_path, app={"data_dir": data}, clock=lambda: morning) as bot:
        settled = {r.idempotency_key: r for r in await bot.outbox_settled()}
        sent = bot.fake.sent_to(OWNER)
    assert [(c.method, c.file_names.get("document")) for c in sent] == [
        ("sendDocument", "ok.csv"),
        ("sendMessage", None),
    ]
    assert sent[0].files["document"] == b"reference\nR-1\n"
    assert sent[1].text == "📊 Tue 1 Dec"
    for key in ("missing", "outside", "absolute"):
        row = settled[f"files:{key}"]
        assert row.status.value == "dead" and (row.last_error or "").startswith("file missing")
    assert settled["files:ok"].status.value == "sent"
