"""A signature drawn on the pad: its strokes checked, and drawn the same way every time as SVG
and as PNG (Pillow), so that each file's SHA-256 proves what was signed."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from core.errors import DomainError

MAX_STROKES = 300
MAX_POINTS = 20_000
MIN_SIDE, MAX_SIDE = 50, 2000
PEN = 3  # line width in pixels

Point = tuple[float, float]


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    strokes: tuple[tuple[Point, ...], ...]


def drawing(raw: Any) -> Drawing:
    """The pad's JSON (`{"width", "height", "strokes": [[[x, y], …], …]}`) checked: sizes within
    bounds, coordinates numbers (kept inside the box, to a tenth of a pixel), some stroke."""
    try:
        width, height = int(raw["width"]), int(raw["height"])
        strokes_in = raw["strokes"]
        if not isinstance(strokes_in, list):
            raise TypeError
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise ValueError
        strokes: list[tuple[Point, ...]] = []
        total = 0
        for stroke in strokes_in:
            points: list[Point] = []
            for x, y in stroke:
                fx, fy = float(x), float(y)
                if not (math.isfinite(fx) and math.isfinite(fy)):
                    raise ValueError
                points.append(
                    (round(min(max(fx, 0.0), width), 1), round(min(max(fy, 0.0), height), 1))
                )
            total += len(points)
            if points:
                strokes.append(tuple(points))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise DomainError("sign.bad_drawing") from None
    if not strokes:
        raise DomainError("sign.empty")
    if len(strokes) > MAX_STROKES or total > MAX_POINTS:
        raise DomainError("sign.too_big")
    return Drawing(width, height, tuple(strokes))


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def svg(sign: Drawing) -> bytes:
    paths = []
    for stroke in sign.strokes:
        (x0, y0), rest = stroke[0], stroke[1:]
        d = f"M{_number(x0)} {_number(y0)}"
        d += "".join(f"L{_number(x)} {_number(y)}" for x, y in rest) if rest else "l0 0"
        paths.append(f'<path d="{d}"/>')
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{sign.width}" height="{sign.height}" viewBox="0 0 {sign.width} {sign.height}">'
        f'<g fill="none" stroke="#000" stroke-width="{PEN}" stroke-linecap="round" '
        f'stroke-linejoin="round">{"".join(paths)}</g></svg>\n'
    ).encode()


def png(sign: Drawing) -> bytes:
    image = Image.new("L", (sign.width, sign.height), 255)
    pen = ImageDraw.Draw(image)
    radius = PEN / 2
    for stroke in sign.strokes:
        if len(stroke) > 1:
            pen.line(stroke, fill=0, width=PEN, joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round ends, as in the SVG
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
