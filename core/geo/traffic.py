"""The hour-of-day traffic profile: `7-9:1.35, 16-19:1.45` means hours 7–8 take 1.35× as long
and 16–18 1.45×; other hours 1.0."""

from __future__ import annotations

import re

PART = re.compile(r"(\d{1,2})\s*-\s*(\d{1,2})\s*:\s*(\d+(?:\.\d+)?)")


def parse_factors(text: str) -> tuple[float, ...]:
    """24 factors; ValueError naming the part that is wrong."""
    factors = [1.0] * 24
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = PART.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not like 7-9:1.4")
        start, end, factor = int(match[1]), int(match[2]), float(match[3])
        if not 0 <= start < end <= 24 or factor <= 0:
            raise ValueError(f"{part!r} needs hours 0–24, start before end, and a factor above 0")
        factors[start:end] = [factor] * (end - start)
    return tuple(factors)
