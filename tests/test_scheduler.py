"""The scheduler (core.scheduler) on a real database: each fire time runs once across
instances, missed runs within grace run once after a restart, failures are recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

import pytest
from sqlmodel import col, select

from core.config import Settings
from core.db import Database
from core.jobs import dispatch_jobs
from core.models import JobOutcome, JobRun
from core.scheduler import Job, Scheduler, daily, due, every, next_fire

MORNING = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # 06:00 in Berlin (CET)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Counting:
    """An async job that counts its runs (and can fail, or take a while)."""

    def __init__(self, *, fail: int = 0, takes: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.takes = takes

    async def __call__(self) -> None:
        self.calls += 1
        if self.takes:
            await asyncio.sleep(self.takes)
        if self.calls <= self.fail:
            raise RuntimeError(f"boom {self.calls}")


async def runs(db: Database, job: str | None = None) -> list[JobRun]:
    async with db.sessions() as session:
        statement = select(JobRun).order_by(col(JobRun.scheduled_for), col(JobRun.id))
        if job is not None:
            statement = statement.where(JobRun.job == job)
        return list(await session.exec(statement))


def planning(work: Counting, grace: timedelta = timedelta(hours=1)) -> Job:
    return daily("plan", time(6, 30), "Europe/Berlin", work, grace)


def test_fire_times_are_local_whole_seconds_and_the_same_for_everyone():
    job = planning(Counting())
    assert next_fire(job, MORNING) == datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)  # CEST: 06:30 local is 04:30 UTC
    assert next_fire(job, summer) == datetime(2026, 7, 1, 4, 30, tzinfo=UTC)
    assert due(job, MORNING) is None
    assert due(job, MORNING + timedelta(minutes=30)) == datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
    assert due(job, MORNING + timedelta(minutes=91)) is None  # 61 minutes late: past grace
    minute = every("tick", timedelta(minutes=1), Counting())
    at = datetime(2026, 3, 2, 5, 0, 42, 123456, tzinfo=UTC)
    assert due(minute, at) == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert next_fire(minute, at) == datetime(2026, 3, 2, 5, 1, tzinfo=UTC)
    assert next_fire(minute, datetime(2026, 3, 2, 5, 1, tzinfo=UTC)) == datetime(
        2026, 3, 2, 5, 2, tzinfo=UTC
    )
    odd = every("odd", timedelta(minutes=7.3), Counting())  # float intervals: exact seconds
    assert due(odd, at) is not None and due(odd, at).microsecond == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="under a second"):
        every("too fast", timedelta(milliseconds=500), Counting())
    with pytest.raises(ValueError, match="two jobs with one name"):
        Scheduler(None, [minute, minute])  # type: ignore[arg-type]


async def test_two_schedulers_on_one_database_run_a_due_job_once(database_url: str):
    """Two instances (two engines) see the same fire time due at once: one runs it."""
    clock = Clock(MORNING + timedelta(minutes=31))
    first, second = Database(database_url), Database(database_url)
    try:
        work = Counting(takes=0.2)
        a = Scheduler(first, [planning(work)], clock=clock, instance="a")
        b = Scheduler(second, [planning(work)], clock=clock, instance="b")
        ran = await asyncio.gather(a.run_due(), b.run_due())
        assert sorted(ran, key=len) == [[], ["plan"]]
        assert work.calls == 1
        # both try again (a restart, a second pass): nobody runs it again
        assert await asyncio.gather(a.run_due(), b.run_due()) == [[], []]
        assert work.calls == 1
        [run] = await runs(first)
        assert (run.job, run.scheduled_for) == ("plan", datetime(2026, 3, 2, 5, 30, tzinfo=UTC))
        assert run.instance in {"a", "b"} and run.outcome is JobOutcome.OK
        assert run.finished_at is not None
    finally:
        await first.dispose()
        await second.dispose()


async def test_two_running_schedulers_share_every_fire_time_once(database_url: str):
    """Two started schedulers, real clock, a job every second for a few seconds: each fire
    time is run by exactly one of them and recorded once."""
    first, second = Database(database_url), Database(database_url)
    work = Counting()
    job = every("tick", timedelta(seconds=1), work)
    schedulers = [
        Scheduler(first, [job], instance="a", tick_s=0.2),
        Scheduler(second, [job], instance="b", tick_s=0.2),
    ]
    try:
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(4.5)
    finally:
        for scheduler in schedulers:
            await scheduler.stop()
    try:
        recorded = await runs(first)
    finally:
        await first.dispose()
        await second.dispose()
    assert len(recorded) >= 3
    assert work.calls == len(recorded)
    assert len({r.scheduled_for for r in recorded}) == len(recorded)
    assert all(r.outcome is JobOutcome.OK for r in recorded)


async def test_a_missed_run_runs_once_after_a_restart(db: Database):
    clock = Clock(MORNING)  # 06:00 local: not due yet
    work = Counting()
    assert await Scheduler(db, [planning(work)], clock=clock).run_due() == []
    # down over 06:30; back at 06:50, within the hour of grace: it runs, once
    clock.now = MORNING + timedelta(minutes=50)
    assert await Scheduler(db, [planning(work)], clock=clock).run_due() == ["plan"]
    # restarted again at 07:10: the run is recorded, so not again
    clock.now = MORNING + timedelta(minutes=70)
    again = Scheduler(db, [planning(work)], clock=clock)
    assert await again.run_due() == []
    assert work.calls == 1
    assert [(r.scheduled_for, r.outcome) for r in await runs(db)] == [
        (datetime(2026, 3, 2, 5, 30, tzinfo=UTC), JobOutcome.OK)
    ]


async def test_a_run_missed_by_more_than_its_grace_does_not_run(db: Database):
    clock = Clock(MORNING + timedelta(hours=2))  # 08:00 local, 90 minutes past 06:30
    work = Counting()
    scheduler = Scheduler(db, [planning(work)], clock=clock)
    assert await scheduler.run_due() == []
    assert work.calls == 0 and await runs(db) == []
    clock.now = MORNING + timedelta(days=1, minutes=31)  # the next day's fire time runs
    assert await scheduler.run_due() == ["plan"]
    assert [r.scheduled_for for r in await runs(db)] == [datetime(2026, 3, 3, 5, 30, tzinfo=UTC)]


async def test_a_failing_job_is_recorded_and_the_next_run_still_happens(db: Database):
    clock = Clock(MORNING)
    broken, fine = Counting(fail=1), Counting()
    jobs = [
        every("broken", timedelta(minutes=1), broken),
        every("fine", timedelta(minutes=1), fine),
    ]
    scheduler = Scheduler(db, jobs, clock=clock)
    assert sorted(await scheduler.run_due()) == ["broken", "fine"]
    clock.now += timedelta(minutes=1)
    assert sorted(await scheduler.run_due()) == ["broken", "fine"]
    recorded = await runs(db, "broken")
    assert [(r.outcome, r.error) for r in recorded] == [
        (JobOutcome.FAILED, "RuntimeError: boom 1"),
        (JobOutcome.OK, None),
    ]
    assert all(r.finished_at is not None for r in recorded)
    assert [r.outcome for r in await runs(db, "fine")] == [JobOutcome.OK, JobOutcome.OK]


async def test_the_loop_survives_a_failing_job_and_runs_the_next_fire_time(db: Database):
    """Started for real: the first run fails, the loop goes on and runs the next one."""
    work = Counting(fail=1)
    scheduler = Scheduler(db, [every("flaky", timedelta(seconds=1), work)], tick_s=0.2)
    scheduler.start()
    try:
        for _ in range(50):
            if [r.outcome for r in await runs(db)][:2] == [JobOutcome.FAILED, JobOutcome.OK]:
                break
            await asyncio.sleep(0.1)
    finally:
        await scheduler.stop()
    outcomes = [r.outcome for r in await runs(db)]
    assert outcomes[:2] == [JobOutcome.FAILED, JobOutcome.OK]


async def test_a_frozen_clock_runs_a_fire_time_once(db: Database):
    clock = Clock(MORNING + timedelta(seconds=30))
    work = Counting()
    scheduler = Scheduler(db, [every("tick", timedelta(minutes=1), work)], clock=clock, tick_s=0.1)
    scheduler.start()
    await asyncio.sleep(0.8)  # several ticks on real time; the clock does not move
    clock.now += timedelta(minutes=1)  # a test moves time: the next tick notices
    await asyncio.sleep(0.5)
    await scheduler.stop()
    assert work.calls == 2
    assert [r.scheduled_for.minute for r in await runs(db)] == [0, 1]


async def test_stopping_is_prompt_and_records_a_run_cut_short(db: Database):
    work = Counting(takes=3600)
    slow = every("slow", timedelta(minutes=1), work)
    scheduler = Scheduler(db, [slow], tick_s=0.1, stop_s=0.2)
    scheduler.start()
    for _ in range(50):
        if work.calls:
            break
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await scheduler.stop()
    assert loop.time() - started < 2
    [run] = await runs(db)
    assert run.outcome is JobOutcome.FAILED
    assert run.error is not None and "stopped before it finished" in run.error


def test_dispatch_jobs_follow_the_settings():
    async def plan() -> None:
        return None

    def build(**dispatch: object) -> list[str]:
        settings = Settings(
            app={"timezone": "Europe/Berlin"},
            dispatch=dispatch,
            _env_file=None,  # type: ignore[call-arg]
        )
        jobs = dispatch_jobs(settings, plan_day=plan, reoptimize=plan)
        return [f"{job.name}: {job.when}" for job in jobs]

    assert build() == [
        "dispatch.plan_day: daily at 06:30 (Europe/Berlin)",
        "dispatch.reoptimize: every 15 min",
    ]
    assert build(mode="manual") == []
    assert build(reoptimize_minutes=0, plan_at="07:05") == [
        "dispatch.plan_day: daily at 07:05 (Europe/Berlin)"
    ]


async def test_a_job_longer_than_its_interval_never_overlaps_itself(db: Database):
    """Fire times that pass while it runs are not stacked up: the latest one runs after it."""
    running, most = [0], [0]

    async def slow() -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await asyncio.sleep(1.5)
        finally:
            running[0] -= 1

    scheduler = Scheduler(db, [every("slow", timedelta(seconds=1), slow)], tick_s=0.1)
    scheduler.start()
    await asyncio.sleep(3.8)
    await scheduler.stop()
    recorded = await runs(db)
    assert most[0] == 1
    assert 2 <= len(recorded) <= 3
    for earlier, later in pairwise(recorded):
        assert earlier.finished_at is not None and later.started_at >= earlier.finished_at
