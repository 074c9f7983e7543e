"""Pacing shared by the chat senders: an overall rate, and sleeping until a deadline that may
move later (a chat's next turn, a platform's "wait" answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MARGIN = 1.03  # stay a little under the limits: platforms count in sliding windows


async def sleep_until(deadline: Callable[[], float]) -> None:
    """Sleep until the monotonic time `deadline()`, which may move later while we sleep."""
    while (delay := deadline() - time.monotonic()) > 0:  # noqa: ASYNC110 (a deadline, not an event)
        await asyncio.sleep(delay)


class Pace:
    """Lets callers through one at a time, at least `1/rate` seconds apart (measured when each
    is let through, with a small margin for timer jitter); `pause` holds everyone back."""

    def __init__(self, rate: float) -> None:
        self.gap = MARGIN / rate
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            await sleep_until(lambda: self.next)  # a pause may move `next` on meanwhile
            self.next = time.monotonic() + self.gap

    def pause(self, seconds: float) -> None:
        self.next = max(self.next, time.monotonic() + seconds)
