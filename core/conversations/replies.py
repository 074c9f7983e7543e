"""What the core answers, on any channel (an adapter renders these its own way)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MAX_BUTTONS = 3
MAX_CHOICES = 10


@dataclass(frozen=True)
class Button:
    label: str
    data: str  # ≤ 64 bytes, made by core.conversations.buttons


@dataclass(frozen=True)
class Link:
    """A button that opens an address (navigation to a stop). `web_app`: a page of ours to open
    inside the chat where the channel can (a Telegram Mini App), else as a plain link."""

    label: str
    url: str
    web_app: bool = False


@dataclass(frozen=True)
class Choices:
    """A list to pick one from (at most MAX_CHOICES rows)."""

    rows: tuple[Button, ...]
    title: str = ""

    def __post_init__(self) -> None:
        if not 0 < len(self.rows) <= MAX_CHOICES:
            raise ValueError(f"a list has 1 to {MAX_CHOICES} choices, not {len(self.rows)}")


@dataclass(frozen=True)
class OutFile:
    kind: Literal["photo", "document", "qr"]
    name: str
    content: bytes | None = None
    path: Path | None = None  # under APP_DATA_DIR
    file_ref: str | None = None  # the channel's own copy, when it has one


@dataclass(frozen=True)
class Reply:
    """One message. `edit`: replaces the previous reply of this turn where the channel can (a
    progress line), else sent as a new message. `ask_location`: offer a one-tap location button;
    `close_keyboard`: take such a button away again."""

    text: str
    buttons: tuple[Button, ...] = ()
    choices: Choices | None = None
    ask_location: bool = False
    file: OutFile | None = None
    edit: bool = False
    link: Link | None = None
    close_keyboard: bool = False
    alert: bool = False  # a short notice on the button pressed where the channel has one

    def __post_init__(self) -> None:
        if len(self.buttons) > MAX_BUTTONS:
            raise ValueError(f"at most {MAX_BUTTONS} buttons, not {len(self.buttons)}")
        if self.buttons and self.choices:
            raise ValueError("buttons or a list, not both")
