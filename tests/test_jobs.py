"""The service's own jobs on its scheduler: the stale-location check runs by itself in a running
service (the real Telegram adapter, the fake Bot API), every minute of the service's clock."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from core.clock import system_clock
from core.db import Database
from core.models import Driver, JobOutcome, JobRun, Role, ShiftState
from tests.instances import running
from tests.telegram_harness import add_person, running_bot

STALE = "tracking.stale_locations"


async def finished_runs(db: Database, count: int, wait_s: float = 20.0) -> list[JobRun]:
    """Wait until `count` runs of the stale check have finished; all of them."""
    for _ in range(int(wait_s / 0.05)):
        async with db.sessions() as session:
            statement = select(JobRun).where(
                JobRun.job == STALE, col(JobRun.finished_at).isnot(None)
            )
            done = list(await session.exec(statement.order_by(col(JobRun.scheduled_for))))
        if len(done) >= count:
            return done
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} run(s) of {STALE} did not finish within {wait_s} s")


async def test_the_scheduler_asks_a_stale_driver_to_share_again_once(db: Database, tmp_path: Path):
    _, member = await add_person(db, 601, "Ana Driver", [Role.DRIVER])
    await add_person(db, 602, "Bo Boss", [Role.DISPATCHER])
    now = [system_clock()]
    async with db.transaction() as session:
        driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
        driver.shift_state = ShiftState.ON
        driver.last_seen_at = now[0] - timedelta(minutes=1)
        driver.live_until = now[0] + timedelta(hours=1)
        session.add(driver)
    async with running_bot(db, tmp_path, clock=lambda: now[0]) as bot:
        # the service starts: the current minute's check runs, and finds her position fresh
        await finished_runs(db, 1)
        await bot.outbox_settled()
        assert bot.texts(601) == [] and bot.texts(602) == []

        # a quarter of an hour later on the service's clock, nothing heard from her
        now[0] += timedelta(minutes=15)
        bot.app.state.scheduler.wake()
        await finished_runs(db, 2)
        await bot.outbox_settled()
        assert "share your live location again" in bot.texts(601)[-1]
        assert "Ana Driver's location is" in (bot.last(602).text or "")

        # the next minute's check: the same stale spell, nobody is told again
        now[0] += timedelta(minutes=1)
        bot.app.state.scheduler.wake()
        runs = await finished_runs(db, 3)
        await bot.outbox_settled()
        assert len(bot.texts(601)) == 1 and len(bot.texts(602)) == 1
    assert [r.outcome for r in runs] == [JobOutcome.OK] * 3
    assert runs[1].scheduled_for == (now[0] - timedelta(minutes=1)).replace(second=0, microsecond=0)


async def test_two_running_services_run_each_fire_time_once(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    """Two `lastmile run` processes on one database start within the same minute: the stale
    check's fire time is run by one of them, recorded once."""
    env = {**clean_env, "APP_LOG_LEVEL": "INFO"}
    async with running(database_url, tmp_path, env, env) as instances:
        recorded = await finished_runs(db, 1)
        await asyncio.sleep(1.0)  # the other instance's attempt, if it were to run it too
        recorded = await finished_runs(db, 1)
    said = [  # every run either instance made, as it logged it
        line.split("scheduled job ")[1].rsplit(" in ", 1)[0]
        for each in instances
        for line in each.output().splitlines()
        if f"scheduled job {STALE} " in line
    ]
    assert len(recorded) >= 1
    assert sorted(said) == [f"{STALE} ({run.scheduled_for.isoformat()}): ok" for run in recorded]
    assert {run.instance for run in recorded} <= {
        f"{socket.gethostname()}:{each.process.pid}" for each in instances
    }
