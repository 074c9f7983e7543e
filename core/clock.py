"""The one clock the service reads time from.

A clock is anything called with no arguments that returns an aware UTC `datetime`. The
composition root (`web/app.py`, `lastmile/cli.py`) picks one and passes it to `Database` and
`Services.build`; every component reads the time from it. `system_clock` is the only place the
wall clock is read (`time.monotonic()` may still measure real durations: timeouts, pacing).
`FixedClock` stands still until moved (tests); `SimClock` runs `speed` times faster than real
time from `start` (the demo plays a day in minutes).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: a clock keeps time-zone aware times")
    return moment.astimezone(UTC)


class FixedClock:
    """A clock that says `now` until it is set or advanced."""

    def __init__(self, now: datetime) -> None:
        self.now = _aware(now)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = _aware(now)

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class SimClock:
    """Simulated time: `start` plus the real (monotonic) time elapsed since it was made, times
    `speed`, plus whatever `advance` added. `speed=1` is a wall clock shifted to `start`."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.start = _aware(start)
        self.speed = speed
        self._began = time.monotonic()
        self._skipped = timedelta()

    def __call__(self) -> datetime:
        elapsed = (time.monotonic() - self._began) * self.speed
        return self.start + timedelta(seconds=elapsed) + self._skipped

    def advance(self, delta: timedelta) -> datetime:
        """Jump ahead by `delta` of simulated time (the pace stays the same)."""
        self._skipped += delta
        return self()

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds `simulated` takes at this clock's speed (for sleeping)."""
        return simulated.total_seconds() / self.speed


def pace(clock: Clock) -> float:
    """Seconds passing on `clock` per real second: a simulated clock's speed, else 1."""
    return float(getattr(clock, "speed", 1.0))
