"""Reports pushed to owners by the scheduler (core.jobs.report_jobs, core.reports.push)
on a real database with a fake clock: the day's report once at REPORTS_DAILY_AT (local), never
again after a restart, once after a missed run within the grace, the last week's on Mondays,
nothing for an owner who switched reports off."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlmodel import col, select

from core.bootstrap import Services
from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.jobs import report_jobs
from core.models import Member, OutboxMessage, OutboxStatus, Role
from core.reports import push as report_push
from core.scheduler import Scheduler
from tests.factories import add_member

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 7 Dec 2026, 19:59 in Berlin (CET, UTC+1)
BEFORE = datetime(2026, 12, 7, 19, 59, tzinfo=BERLIN).astimezone(UTC)
EIGHT_PM = datetime(2026, 12, 7, 20, 0, tzinfo=BERLIN).astimezone(UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings_for(tmp_path: Path, daily_at: str = "20:00") -> Settings:
    return Settings(
        app={"data_dir": tmp_path, "timezone": "Europe/Berlin"},
        reports={"daily_at": daily_at},
        dispatch={"mode": "manual"},
        _env_file=None,  # type: ignore[call-arg]
    )


def scheduler(db: Database, settings: Settings, clock: Clock) -> Scheduler:
    services = Services.build(settings, db, clock=clock)
    return Scheduler(db, report_jobs(services), clock=clock)


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list(await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


async def test_the_day_report_goes_once_at_the_local_time_and_not_again_after_a_restart(
    db: Database, tmp_path: Path
):
    owner = await add_member(db, "Olga Owner", [Role.OWNER], telegram_chat_id=701)
    await add_member(db, "Dora Dispatcher", [Role.DISPATCHER], telegram_chat_id=702)
    settings = settings_for(tmp_path)
    clock = Clock(BEFORE)
    first = scheduler(db, settings, clock)
    assert await first.run_due() == []
    assert await rows(db) == []

    clock.now = EIGHT_PM
    # Monday: the day's report and the last week's
    assert sorted(await first.run_due()) == ["reports.daily", "reports.weekly"]
    sent = await rows(db)
    assert [(r.recipient_member_id, r.template) for r in sent] == [
        (owner.id, "owner.report"),
        (owner.id, "owner.report_chart"),
        (owner.id, "owner.report_csv"),
    ] * 2  # the dispatcher gets none
    day, week = sent[:3], sent[3:]
    assert [r.idempotency_key for r in day] == [
        f"report:2026-12-07:{owner.id}:{part}" for part in ("text", "chart", "csv")
    ]
    assert [r.idempotency_key for r in week] == [
        f"report:week-2026-11-30:{owner.id}:{part}" for part in ("text", "chart", "csv")
    ]
    assert day[0].actions == [{"action": "reports.off", "order_id": 0}]
    chart = tmp_path / day[1].params["photo_path"]
    sheet = tmp_path / day[2].params["document_path"]
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sheet.name.endswith(".csv") and sheet.read_bytes()
    assert day[1].params["photo_path"].startswith("reports/2026-12-07/en/")
    assert week[2].params["document_path"].startswith("reports/week-2026-11-30/en/")
    assert all(r.status is OutboxStatus.PENDING for r in sent)

    assert await first.run_due() == []  # the same fire time: done
    clock.now = EIGHT_PM + timedelta(minutes=5)
    restarted = scheduler(db, settings, clock)  # a restart (or a second instance)
    assert await restarted.run_due() == []
    assert len(await rows(db)) == 6

    # even a push run again by hand queues nothing twice
    services = Services.build(settings, db, clock=clock)
    period = report_push.periods.day(datetime(2026, 12, 7).date(), BERLIN)
    assert await report_push.push(db, services.settings, period, clock.now) == 0
    assert len(await rows(db)) == 6

    # the next day at 20:00: that day's report, no week
    clock.now = EIGHT_PM + timedelta(days=1)
    assert await restarted.run_due() == ["reports.daily"]
    assert (await rows(db))[-1].idempotency_key == f"report:2026-12-08:{owner.id}:csv"


async def test_a_missed_run_within_the_grace_runs_once_for_the_day_it_was_meant_for(
    db: Database, tmp_path: Path
):
    owner = await add_member(db, "Olga Owner", [Role.OWNER], telegram_chat_id=701)
    settings = settings_for(tmp_path, "22:30")
    # the service was down over Tuesday 22:30 and starts at 01:15 on Wednesday (2 h 45 late)
    clock = Clock(datetime(2026, 12, 9, 1, 15, tzinfo=BERLIN).astimezone(UTC))
    assert await scheduler(db, settings, clock).run_due() == ["reports.daily"]
    keys = [r.idempotency_key for r in await rows(db)]
    assert keys == [f"report:2026-12-08:{owner.id}:{p}" for p in ("text", "chart", "csv")]
    clock.now += timedelta(minutes=1)
    assert await scheduler(db, settings, clock).run_due() == []  # restarted again: not twice

    # down over Wednesday 22:30 until Thursday 02:31 (past the 4 h grace): not run at all
    clock.now = datetime(2026, 12, 10, 2, 31, tzinfo=BERLIN).astimezone(UTC)
    assert await scheduler(db, settings, clock).run_due() == []
    assert len(await rows(db)) == 3


async def test_an_owner_who_switched_reports_off_gets_none(db: Database, tmp_path: Path):
    olga = await add_member(db, "Olga Owner", [Role.OWNER], telegram_chat_id=701)
    otto = await add_member(db, "Otto Owner", [Role.OWNER], telegram_chat_id=703)
    gone = await add_member(db, "Gina Gone", [Role.OWNER], telegram_chat_id=704, active=False)
    dora = await add_member(db, "Dora Dispatcher", [Role.DISPATCHER], telegram_chat_id=702)
    assert otto.id and olga.id and dora.id and gone.id
    assert await report_push.switch(db, otto.id, " OFF ") == "reports.now_off"
    assert await report_push.switch(db, otto.id, "") == "reports.now_off"  # only tells
    for bad in ("maybe", "of", "on off", "🙂"):
        with pytest.raises(DomainError) as refused:
            await report_push.switch(db, olga.id, bad)
        assert refused.value.key == "reports.usage"
    with pytest.raises(DomainError) as refused:
        await report_push.switch(db, dora.id, "off")
    assert refused.value.key == "reports.owners_only"
    async with db.sessions() as session:
        flags = {m.id: m.reports_off for m in await session.exec(select(Member))}
    assert flags == {olga.id: False, otto.id: True, gone.id: False, dora.id: False}

    settings = settings_for(tmp_path)
    clock = Clock(EIGHT_PM + timedelta(days=1))  # a Tuesday: the day's report only
    assert await scheduler(db, settings, clock).run_due() == ["reports.daily"]
    assert {r.recipient_member_id for r in await rows(db)} == {olga.id}

    assert await report_push.switch(db, otto.id, "on") == "reports.now_on"
    clock.now += timedelta(days=1)
    assert await scheduler(db, settings, clock).run_due() == ["reports.daily"]
    latest = [r.recipient_member_id for r in (await rows(db))[3:]]
    assert sorted(latest) == sorted([olga.id] * 3 + [otto.id] * 3)


def test_a_report_time_must_be_a_time_of_day():
    for bad in ("25:00", "20:61", "eight", "-1"):
        with pytest.raises(ValidationError, match="daily_at"):
            Settings(reports={"daily_at": bad}, _env_file=None)  # type: ignore[call-arg]
    for bad in ("0", "0.5", "-5", "abc", "100000"):
        with pytest.raises(ValidationError, match="unassigned_minutes"):
            Settings(alerts={"unassigned_minutes": bad}, _env_file=None)  # type: ignore[call-arg]
    assert Settings(_env_file=None).reports.daily_at == time(20, 0)  # type: ignore[call-arg]


def test_the_report_day_and_week_are_those_of_the_latest_fire_time():
    at = time(20, 0)
    monday_night = datetime(2026, 12, 7, 20, 0, tzinfo=BERLIN)
    assert report_push.report_day(monday_night, at, BERLIN).isoformat() == "2026-12-07"
    assert report_push.report_week(monday_night, at, BERLIN).isoformat() == "2026-11-30"
    after_midnight = datetime(2026, 12, 8, 0, 30, tzinfo=BERLIN)  # late, within the grace
    assert report_push.report_day(after_midnight, at, BERLIN).isoformat() == "2026-12-07"
    assert report_push.report_week(after_midnight, at, BERLIN).isoformat() == "2026-11-30"
