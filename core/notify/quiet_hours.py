"""Quiet hours: local hours when messages that are not urgent wait for the morning."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Messages that can wait for the morning; everything about a delivery under way cannot.
NOT_URGENT = frozenset(
    {
        "customer.order_confirmed",
        "customer.order_rescheduled",
        "customer.order_returned",
        "customer.order_cancelled",
        "driver.order_unassigned",
    }
)


@dataclass(frozen=True)
class QuietHours:
    """Local hours [start, end) when messages that are not urgent wait (e.g. 21-8)."""

    start: int
    end: int
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str) -> QuietHours | None:
        text = text.strip()
        if not text:
            return None
        match = re.fullmatch(r"(\d{1,2})\s*-\s*(\d{1,2})", text)
        if not match or not all(0 <= int(h) <= 24 for h in match.groups()):
            raise ValueError(f"{text!r} is not quiet hours like 21-8")
        start, end = (int(h) % 24 for h in match.groups())
        if start == end:
            raise ValueError(f"{text!r} starts and ends at the same hour")
        return cls(start, end, ZoneInfo(zone))

    def not_before(self, template: str, now: datetime) -> datetime:
        """When a message with `template` may go out, written at `now`."""
        if template not in NOT_URGENT:
            return now
        local = now.astimezone(self.zone)
        hour = local.hour
        quiet = (
            self.start <= hour < self.end
            if self.start < self.end
            else (hour >= self.start or hour < self.end)
        )
        if not quiet:
            return now
        morning = local.replace(hour=self.end, minute=0, second=0, microsecond=0)
        if morning <= local:
            morning += timedelta(days=1)
        return morning.astimezone(now.tzinfo)
