"""What a person sends, on any channel (an adapter translates its platform's updates into these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from core.people.identities import ChatRef, Person

__all__ = [
    "ChatRef",
    "Command",
    "Contact",
    "Event",
    "Location",
    "Person",
    "Press",
    "Text",
    "Upload",
]


@dataclass(frozen=True)
class Command:
    """`/name args` (the name lower-cased, without the slash or a bot's @name)."""

    name: str
    args: str = ""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Press:
    """A button pressed: the data the core put on it (`core.conversations.buttons`)."""

    data: str


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    live: bool = False
    heading: int | None = None
    accuracy: float | None = None
    live_until: datetime | None = None  # when a live share ends (None: a one-off pin)
    at: datetime | None = None  # when the channel says it was sent (None: now)
    update: bool = False  # a new position of a live share already started (not a new message)
    ended: bool = False  # the live share stopped


@dataclass(frozen=True)
class Upload:
    """A photo or a document; `fetch()` gets its bytes (only when the flow wants them)."""

    kind: Literal["photo", "document"]
    fetch: Callable[[], Awaitable[bytes]] = field(compare=False, repr=False)
    name: str = ""
    caption: str = ""
    file_ref: str | None = None  # the channel's own id of the file (reused to send it again)
    size: int | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class Contact:
    phone: str


Event = Command | Text | Press | Location | Upload | Contact
