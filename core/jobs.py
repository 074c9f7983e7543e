"""The jobs a running Lastmile schedules (core.scheduler runs them), built from its services.

What runs on its own:
- `tracking.stale_locations`, every minute: drivers on shift whose position went stale are asked
  to share again, and dispatchers told (core.services.tracking.Tracker.check_stale).
- `dispatch.plan_day` (daily at DISPATCH_PLAN_AT, local) and `dispatch.reoptimize` (every
  DISPATCH_REOPTIMIZE_MINUTES, none when 0), only when DISPATCH_MODE=auto: `dispatch_jobs`
  builds them from the callables that plan and re-plan (the composition root passes them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from core.config import Settings
from core.scheduler import Job, daily, every
from core.services.hub import Services

log = logging.getLogger(__name__)
STALE_CHECK = timedelta(minutes=1)
PLAN_DAY_GRACE = timedelta(hours=4)  # a service down over DISPATCH_PLAN_AT still plans the day

Run = Callable[[], Awaitable[object]]


def stale_locations(services: Services) -> Job:
    async def check() -> None:
        stale = await services.tracker.check_stale()
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


def service_jobs(services: Services) -> list[Job]:
    """Every job of a running service."""
    autopilot = services.autopilot
    return [
        stale_locations(services),
        *dispatch_jobs(
            services.settings, plan_day=autopilot.plan_day, reoptimize=autopilot.reoptimize
        ),
    ]
