"""The one scheduler the periodic jobs run on; it knows nothing of which jobs exist (core.jobs).

Fire times come from APScheduler 3's triggers (a cron trigger in the business time zone, an
interval trigger anchored to one fixed start), so every instance computes the same fire times.
APScheduler's own scheduler and job stores are not used: its SQLAlchemyJobStore is synchronous
and must never be shared by two schedulers, and "exactly one instance runs each fire time" has
to come from our database. It does: a fire time is claimed by inserting its `JobRun` row (unique
job + fire time) in its own transaction; the instance whose insert wins runs it, the others see
the row and leave it alone. No leader, no lease: an instance that dies loses only the run it was
in (its row stays `running`, shown as lost after `LOST_AFTER`), and the next fire time is claimed
by whoever is alive.

Missed runs: a job is due at the latest fire time that is not in the future and not older than
the job's grace. So after a restart a fire time missed within its grace runs once (its row then
exists, so never again); fire times older than the grace are not run and leave no row.

Time comes from the injectable clock; the loop sleeps on real time (at most `TICK_S`, less when
a fire time is nearer), so a clock moved by a test is noticed within a tick. Jobs are async
callables run as tasks on the event loop, one at a time per job; a failing job is recorded as
failed with its error and the scheduler carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from core.clock import Clock, pace
from core.db import Database
from core.models import JobOutcome, JobRun

log = logging.getLogger(__name__)
ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)  # every interval job's fire times count from here
TICK_S = 30.0  # the longest the loop sleeps before it reads the clock again
STOP_S = 5.0  # how long stopping waits for running jobs before it cancels them
LOST_AFTER = timedelta(hours=1)  # a run still `running` after this: its instance died
KEEP = timedelta(days=14)  # runs older than this are deleted
ERROR_CHARS = 2000
INTERRUPTED = "stopped before it finished (the service shut down)"


@dataclass(frozen=True)
class Job:
    """A named async callable and when it runs. `grace`: how late a fire time may still run
    (after a restart, or when the instance was busy)."""

    name: str
    trigger: BaseTrigger
    run: Callable[[], Awaitable[object]]
    grace: timedelta
    when: str  # the schedule in words, for `lastmile jobs`


def every(name: str, interval: timedelta, run: Callable[[], Awaitable[object]]) -> Job:
    """A job every `interval` (at least a second), on fire times counted from `ANCHOR`; a fire
    time missed by less than one interval still runs."""
    if interval < timedelta(seconds=1):
        raise ValueError(f"{name}: an interval under a second ({interval})")
    trigger = IntervalTrigger(seconds=interval.total_seconds(), start_date=ANCHOR, timezone=UTC)
    minutes = interval.total_seconds() / 60
    when = f"every {minutes:g} min" if minutes >= 1 else f"every {interval.total_seconds():g} s"
    return Job(name, trigger, run, interval, when)


def daily(
    name: str, at: time, timezone: str, run: Callable[[], Awaitable[object]], grace: timedelta
) -> Job:
    """A job every day at local time `at` in `timezone` (DST as APScheduler's cron does it)."""
    trigger = CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=timezone)
    return Job(name, trigger, run, grace, f"daily at {at:%H:%M} ({timezone})")


WEEKDAYS = {"mon": "Mondays", "tue": "Tuesdays", "wed": "Wednesdays", "thu": "Thursdays",
            "fri": "Fridays", "sat": "Saturdays", "sun": "Sundays"}  # fmt: skip


def weekly(
    name: str,
    weekday: str,
    at: time,
    timezone: str,
    run: Callable[[], Awaitable[object]],
    grace: timedelta,
) -> Job:
    """A job once a week, on `weekday` ("mon", …) at local time `at` in `timezone`."""
    trigger = CronTrigger(
        day_of_week=weekday, hour=at.hour, minute=at.minute, second=at.second, timezone=timezone
    )
    days = WEEKDAYS.get(weekday, weekday)
    return Job(name, trigger, run, grace, f"{days} at {at:%H:%M} ({timezone})")


def _whole_second(moment: datetime) -> datetime:
    """Fire times to the second, in UTC: the same value on every instance whatever float
    arithmetic the trigger did (they are half of the claim's unique key)."""
    return datetime.fromtimestamp(round(moment.timestamp()), UTC)


def next_fire(job: Job, after: datetime) -> datetime | None:
    """The job's first fire time strictly after `after` (None: it never fires again)."""
    moment = job.trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and _whole_second(moment) <= after:
        moment = job.trigger.get_next_fire_time(moment, moment)
    return None if moment is None else _whole_second(moment)


def due(job: Job, now: datetime) -> datetime | None:
    """The latest fire time in [now - grace, now], if any: the one to run now."""
    moment = job.trigger.get_next_fire_time(None, now - job.grace)
    latest = None
    while moment is not None and _whole_second(moment) <= now:
        latest = _whole_second(moment)
        moment = job.trigger.get_next_fire_time(moment, moment)
    return latest


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


class Scheduler:
    """Runs `jobs` on their fire times while started; see the module's docstring."""

    def __init__(
        self,
        db: Database,
        jobs: Sequence[Job],
        *,
        clock: Clock | None = None,
        instance: str | None = None,
        tick_s: float = TICK_S,
        stop_s: float = STOP_S,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"two jobs with one name: {names}")
        self.db = db
        self.jobs = list(jobs)
        self.clock: Clock = clock or db.now
        self.instance = instance or instance_name()
        self.tick_s = tick_s
        self.stop_s = stop_s
        self._handled: dict[str, datetime] = {}  # the last fire time claimed or seen taken
        self._running: dict[str, asyncio.Task[bool]] = {}
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._woken.clear()
        self._loop = asyncio.create_task(self._run_forever(), name="scheduler")

    def wake(self) -> None:
        """Read the clock now instead of at the end of the current sleep (a clock moved by a
        test or a demo, or a caller that wants due jobs started at once)."""
        self._woken.set()

    async def stop(self) -> None:
        """Stop promptly: no new run starts; runs under way get `stop_s` to finish, then are
        cancelled and recorded as failed."""
        self._stopping.set()
        self._woken.set()
        if self._loop is not None:
            await self._loop
            self._loop = None
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self.stop_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def run_due(self) -> list[str]:
        """One pass: start every job that is due and not running here, and wait for those
        runs. Returns the names of the jobs this instance ran."""
        started = self._start_due()
        results = await asyncio.gather(*started.values())
        return [name for name, ran in zip(started, results, strict=True) if ran]

    def _start_due(self) -> dict[str, asyncio.Task[bool]]:
        now = self.clock()
        started: dict[str, asyncio.Task[bool]] = {}
        for job in self.jobs:
            if job.name in self._running:
                continue  # one run of a job at a time here; its next fire time waits
            fire = due(job, now)
            if fire is None or self._handled.get(job.name) == fire:
                continue
            task = asyncio.create_task(self._execute(job, fire), name=f"job {job.name}")
            self._running[job.name] = task
            task.add_done_callback(functools.partial(self._done, job.name))
            started[job.name] = task
        return started

    def _done(self, name: str, _task: object = None) -> None:
        self._running.pop(name, None)
        self._woken.set()  # a fire time that came while it ran is looked at now

    async def _run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                self._start_due()
                delay = self._sleep_for(self.clock())
            except Exception:  # a bug or a clock that failed: try again next tick
                log.exception("scheduler: a pass failed")
                delay = self.tick_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), delay)
            self._woken.clear()

    def _sleep_for(self, now: datetime) -> float:
        """Real seconds until the nearest fire time (a simulated clock runs `pace` times
        faster), at most a tick."""
        nearest = self.tick_s
        for job in self.jobs:
            moment = next_fire(job, now)
            if moment is not None:
                nearest = min(nearest, (moment - now).total_seconds() / pace(self.clock))
        return max(nearest, 0.05)

    async def _execute(self, job: Job, fire: datetime) -> bool:
        """Claim `fire` for `job` and run it; whether this instance ran it."""
        try:
            run_id = await self._claim(job, fire)
        except Exception:  # the database is away: the fire time is tried again next tick
            log.warning("scheduler: could not claim %s at %s", job.name, fire, exc_info=True)
            return False
        self._handled[job.name] = fire
        if run_id is None:
            return False  # another instance has it (or had it before a restart)
        outcome, error = JobOutcome.OK, None
        began = asyncio.get_running_loop().time()
        try:
            await job.run()
        except asyncio.CancelledError:
            await self._finish(run_id, JobOutcome.FAILED, INTERRUPTED)
            raise
        except Exception as exc:
            log.exception("scheduled job %s (%s) failed", job.name, fire)
            outcome, error = JobOutcome.FAILED, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        await self._finish(run_id, outcome, error)
        took = asyncio.get_running_loop().time() - began
        log.info("scheduled job %s (%s): %s in %.2f s", job.name, fire.isoformat(), outcome, took)
        return True

    async def _claim(self, job: Job, fire: datetime) -> int | None:
        """Insert the run's row; its id, or None when the row exists already."""
        now = self.clock()
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(JobRun)
            .values(
                job=job.name,
                scheduled_for=fire,
                instance=self.instance,
                started_at=now,
                outcome=JobOutcome.RUNNING,
            )
            .on_conflict_do_nothing(index_elements=["job", "scheduled_for"])
            .returning(col(JobRun.id))
        )
        async with self.db.transaction() as session:
            run_id = (await session.exec(statement)).scalar_one_or_none()
            if run_id is not None:  # old runs go as new ones come
                await session.exec(
                    sa.delete(JobRun).where(
                        col(JobRun.job) == job.name, col(JobRun.scheduled_for) < now - KEEP
                    )
                )
            return run_id

    async def _finish(self, run_id: int, outcome: JobOutcome, error: str | None) -> None:
        try:
            async with self.db.transaction() as session:
                await session.exec(
                    sa.update(JobRun)
                    .where(col(JobRun.id) == run_id)
                    .values(outcome=outcome, error=error, finished_at=self.clock())
                )
        except Exception:  # the run stays `running`; `lastmile jobs` shows it as lost later
            log.warning("scheduler: could not record the end of run %s", run_id, exc_info=True)


def state_of(run: JobRun, now: datetime) -> str:
    """The run's outcome, or "lost" for one that never finished (its instance died)."""
    if run.outcome is JobOutcome.RUNNING and now - run.started_at > LOST_AFTER:
        return "lost"
    return run.outcome.value


async def recent_runs(db: Database, limit: int = 20) -> list[JobRun]:
    """The latest runs of every job, newest first."""
    async with db.reads() as session:
        statement = (
            select(JobRun)
            .order_by(col(JobRun.started_at).desc(), col(JobRun.id).desc())
            .limit(limit)
        )
        return list(await session.exec(statement))


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))
