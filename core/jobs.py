"""The jobs a running Lastmile schedules (core.scheduler runs them), built from its services.

What runs on its own:
- `tracking.stale_locations`, every minute: drivers on shift whose position went stale are asked
  to share again, and dispatchers told (core.drivers.positions.Positions.check_stale).
- `dispatch.plan_day` (daily at DISPATCH_PLAN_AT, local) and `dispatch.reoptimize` (every
  DISPATCH_REOPTIMIZE_MINUTES, none when 0), only when DISPATCH_MODE=auto: `dispatch_jobs`
  builds them from the callables that plan and re-plan (the composition root passes them).
- `reports.daily` (daily at REPORTS_DAILY_AT, local) pushes the day's report to every owner who
  has not switched reports off, and `reports.weekly` (Mondays at the same time) the previous
  Monday–Sunday week's (core.reports.push), after that day's report (which it queues
  itself if the daily job has not yet). Both run up to REPORT_GRACE late.
- `alerts.check`, every minute: exception alerts to dispatchers (core.notify.alerts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from core.bootstrap import Services
from core.config import Settings
from core.reports import periods
from core.reports import push as report_push
from core.scheduler import Job, daily, every, weekly

log = logging.getLogger(__name__)
STALE_CHECK = timedelta(minutes=1)
PLAN_DAY_GRACE = timedelta(hours=4)  # a service down over DISPATCH_PLAN_AT still plans the day
REPORT_GRACE = timedelta(hours=4)  # a service down over REPORTS_DAILY_AT still sends the report
ALERTS_CHECK = timedelta(minutes=1)

Run = Callable[[], Awaitable[object]]


def stale_locations(services: Services) -> Job:
    async def check() -> None:
        stale = await services.positions.check_stale()
        if stale:
            log.info("drivers with a stale location: %s", stale)

    return every("tracking.stale_locations", STALE_CHECK, check)


def dispatch_jobs(
    settings: Settings, *, plan_day: Run | None = None, reoptimize: Run | None = None
) -> list[Job]:
    """The autopilot's jobs for the callables given; none in DISPATCH_MODE=manual, no
    re-optimization when DISPATCH_REOPTIMIZE_MINUTES is 0."""
    dispatch = settings.dispatch
    if dispatch.mode != "auto":
        return []
    jobs = []
    if plan_day is not None:
        zone = settings.app.timezone
        jobs.append(daily("dispatch.plan_day", dispatch.plan_at, zone, plan_day, PLAN_DAY_GRACE))
    if reoptimize is not None and dispatch.reoptimize_minutes > 0:
        interval = timedelta(minutes=dispatch.reoptimize_minutes)
        jobs.append(every("dispatch.reoptimize", interval, reoptimize))
    return jobs


def report_jobs(services: Services) -> list[Job]:
    """The day's report at REPORTS_DAILY_AT (local), the last week's on Mondays at that time."""
    settings = services.settings
    at, timezone = settings.reports.daily_at, settings.app.timezone
    zone = ZoneInfo(timezone)
    turns = asyncio.Lock()  # both are due on Monday evenings: one at a time

    async def day_report() -> None:
        async with turns:
            now = services.clock()
            period = periods.day(report_push.report_day(now, at, zone), zone)
            await report_push.push(services.db, settings, period, now, files=services.files)

    async def week_report() -> None:
        await day_report()  # the day's report comes first (a repeat queues nothing)
        async with turns:
            now = services.clock()
            period = periods.week(report_push.report_week(now, at, zone), zone)
            await report_push.push(services.db, settings, period, now, files=services.files)

    return [
        daily("reports.daily", at, timezone, day_report, REPORT_GRACE),
        weekly("reports.weekly", "mon", at, timezone, week_report, REPORT_GRACE),
    ]


def exception_alerts(services: Services) -> Job:
    return every("alerts.check", ALERTS_CHECK, services.alerts.check)


def service_jobs(services: Services) -> list[Job]:
    """Every job of a running service."""
    autopilot = services.autopilot
    return [
        stale_locations(services),
        *report_jobs(services),
        exception_alerts(services),
        *dispatch_jobs(
            services.settings, plan_day=autopilot.plan_day, reoptimize=autopilot.reoptimize
        ),
    ]
