"""What a button carries: `prefix:field:field` (the same shape Telegram adapters use), at most
64 bytes. Data that does not parse — forged, oversized, from an older version — is `None`, and the
person is told the button is not for them or has expired; nothing else happens."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from core.orders.lifecycle import Window
from core.validation import MAX_ID

MAX_BYTES = 64
SEP = ":"
MAX_EPOCH = 4_102_444_800  # seconds, before 2100
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._")


class Data:
    """A kind of button data; subclasses are frozen dataclasses of int and str fields."""

    prefix: ClassVar[str]
    limits: ClassVar[dict[str, tuple[int, int]]] = {}

    def pack(self) -> str:
        values = [str(getattr(self, f.name)) for f in fields(self)]  # type: ignore[arg-type]
        if any(SEP in v for v in values):
            raise ValueError(f"{SEP!r} in button data {values}")
        data = SEP.join([self.prefix, *values])
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"button data longer than {MAX_BYTES} bytes: {data!r}")
        return data


@dataclass(frozen=True)
class Act(Data):
    """An action carried by a notification (see core.notify.rules)."""

    prefix = "a"
    name: str
    id: int


@dataclass(frozen=True)
class StopOp(Data):
    prefix = "s"
    op: str  # arrive | pickup | deliver | fail | undo
    order: int


@dataclass(frozen=True)
class Fail(Data):
    prefix = "f"
    order: int
    reason: str


@dataclass(frozen=True)
class Rate(Data):
    prefix = "r"
    limits: ClassVar[dict[str, tuple[int, int]]] = {"stars": (1, 5)}
    order: int
    stars: int


@dataclass(frozen=True)
class Slot(Data):
    prefix = "slot"
    limits: ClassVar[dict[str, tuple[int, int]]] = {"start": (0, MAX_EPOCH), "end": (0, MAX_EPOCH)}
    order: int
    start: int
    end: int
    by: str  # c (customer) | d (dispatcher: reschedule) | w (dispatcher: window of a new order)

    def window(self) -> Window:
        return Window(
            datetime.fromtimestamp(self.start, UTC), datetime.fromtimestamp(self.end, UTC)
        )

    @classmethod
    def of(cls, order: int, window: Window, by: str) -> Slot:
        return cls(order, int(window.starts_at.timestamp()), int(window.ends_at.timestamp()), by)


@dataclass(frozen=True)
class Assign(Data):
    prefix = "as"
    order: int
    driver: int


@dataclass(frozen=True)
class OrderOp(Data):
    prefix = "o"
    op: str  # cancel | cancel_yes | assign
    order: int


@dataclass(frozen=True)
class DraftOp(Data):
    prefix = "no"
    op: str  # place | create | edit | abort
    index: int = 0


@dataclass(frozen=True)
class ShiftOp(Data):
    prefix = "sh"
    op: str  # end


@dataclass(frozen=True)
class RouteOp(Data):
    prefix = "rt"
    op: str  # loaded | start


KINDS: tuple[type[Data], ...] = (
    Act,
    StopOp,
    Fail,
    Rate,
    Slot,
    Assign,
    OrderOp,
    DraftOp,
    ShiftOp,
    RouteOp,
)


def _value(kind: type[Data], name: str, typ: Any, raw: str) -> int | str | None:
    if typ in (int, "int"):
        if not raw.isdigit() or len(raw) > 12:
            return None
        low, high = kind.limits.get(name, (0, MAX_ID))
        number = int(raw)
        return number if low <= number <= high else None
    return raw if raw and set(raw) <= NAME_CHARS and len(raw) <= 40 else None


def parse(data: str) -> Data | None:
    """The button data in `data`, or None when it is not data we make."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    prefix, *parts = data.split(SEP)
    for kind in KINDS:
        if kind.prefix != prefix:
            continue
        specs = fields(kind)  # type: ignore[arg-type]
        if len(parts) != len(specs):
            return None
        values = [_value(kind, f.name, f.type, raw) for f, raw in zip(specs, parts, strict=True)]
        if any(v is None for v in values):
            return None
        return kind(*values)
    return None
