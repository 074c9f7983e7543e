"""What the demo writes on the terminal: lines, and the progress line."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo


def progress(now: datetime, zone: ZoneInfo, counts: dict[str, int], total: int) -> str:
    done = counts.get("delivered", 0)
    failed = counts.get("failed", 0) + counts.get("returned", 0)
    width = 30
    filled = round(width * done / total) if total else width
    bar = "#" * filled + "." * (width - filled)
    left = total - done - counts.get("returned", 0) - counts.get("cancelled", 0)
    return (
        f"{now.astimezone(zone):%H:%M} [{bar}] delivered {done}  failed {failed}  remaining {left}"
    )


class Terminal:
    """Where the demo writes: lines, and a progress line a terminal rewrites in place (one line
    per update when the output is not a terminal)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.open = False  # a progress line is on the screen, without its newline

    def __call__(self, text: str) -> None:
        if self.open:
            self.out.write("\n")
            self.open = False
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self, text: str) -> None:
        if not self.tty:
            return self(text)
        self.out.write("\r\x1b[K" + text)
        self.out.flush()
        self.open = True
        return None
