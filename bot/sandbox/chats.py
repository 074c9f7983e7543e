"""The sandbox's chats: who takes part, and what each of them has seen, kept in this process.

A participant is a member with a sandbox chat identity (`ChatRef(channel=sandbox)`); her chat is
the list of messages she wrote and was sent, newest last. Chats are bounded (`LOG_MAX` messages
each, `FILES_MAX` files in all; older ones are forgotten) and live only as long as the process:
the sandbox is for the demo and for trying flows by hand, not a record (the database keeps the
orders, events and outbox rows). Followers (the /sandbox page's event streams) get every new
message as it is added."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

LOG_MAX = 300  # messages kept per participant
FILES_MAX = 200  # file contents kept in all (photos, charts, documents)
FOLLOW_QUEUE = 1000  # messages a slow follower may fall behind before it is dropped


@dataclass(frozen=True)
class Participant:
    key: str  # the sandbox chat id (letters, digits and '-'; also the ChatRef's ids)
    member_id: int
    name: str
    role: str
    language: str = "en"


@dataclass(frozen=True)
class ShownFile:
    kind: str  # photo | document | qr
    name: str
    content: bytes | None = None
    path: Path | None = None  # an absolute path (under APP_DATA_DIR)


@dataclass(frozen=True)
class Shown:
    """One message in a participant's chat: `mine` when she wrote it."""

    id: int
    key: str
    mine: bool
    text: str
    at: datetime
    buttons: tuple[tuple[str, str], ...] = ()  # (label, data)
    choices: tuple[tuple[str, str], ...] = ()
    title: str = ""
    link: tuple[str, str] | None = None  # (label, url)
    ask_location: bool = False
    file: ShownFile | None = field(default=None, compare=False)

    def public(self) -> dict[str, Any]:
        """What the page gets (file contents are fetched by id)."""
        return {
            "id": self.id,
            "key": self.key,
            "mine": self.mine,
            "text": self.text,
            "at": self.at.isoformat(),
            "buttons": [{"label": label, "data": data} for label, data in self.buttons],
            "choices": [{"label": label, "data": data} for label, data in self.choices],
            "title": self.title,
            "link": {"label": self.link[0], "url": self.link[1]} if self.link else None,
            "ask_location": self.ask_location,
            "file": {"kind": self.file.kind, "name": self.file.name} if self.file else None,
        }


class Chats:
    """`zone`: the service's time zone, which the chats show their times in."""

    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone
        self.participants: dict[str, Participant] = {}
        self.by_member: dict[int, str] = {}
        self.logs: dict[str, deque[Shown]] = {}
        self.files: OrderedDict[int, ShownFile] = OrderedDict()
        self._ids = itertools.count(1)
        self._followers: set[asyncio.Queue[Shown]] = set()

    def join(self, participant: Participant) -> None:
        self.participants[participant.key] = participant
        self.by_member[participant.member_id] = participant.key
        self.logs.setdefault(participant.key, deque(maxlen=LOG_MAX))

    def of_member(self, member_id: int) -> Participant | None:
        key = self.by_member.get(member_id)
        return self.participants.get(key) if key else None

    def add(self, key: str, mine: bool, text: str, at: datetime, **parts: Any) -> Shown:
        shown = Shown(next(self._ids), key, mine, text, at.astimezone(self.zone), **parts)
        self.logs[key].append(shown)
        if shown.file is not None:
            self.files[shown.id] = shown.file
            while len(self.files) > FILES_MAX:
                self.files.popitem(last=False)
        for queue in list(self._followers):
            try:
                queue.put_nowait(shown)
            except asyncio.QueueFull:  # a page that stopped reading: it reconnects and reloads
                self._followers.discard(queue)
        return shown

    def messages(self, key: str) -> list[Shown]:
        return list(self.logs.get(key, ()))

    def label(self, key: str, data: str) -> str | None:
        """The label of the newest button in `key`'s chat that carries `data`."""
        for shown in reversed(self.logs.get(key, ())):
            for label, carried in (*shown.buttons, *shown.choices):
                if carried == data:
                    return label
        return None

    def everything(self) -> list[Shown]:
        return [shown for log in self.logs.values() for shown in log]

    def last(self, key: str) -> Shown | None:
        log = self.logs.get(key)
        return log[-1] if log else None

    def file(self, message_id: int) -> ShownFile | None:
        return self.files.get(message_id)

    @contextlib.asynccontextmanager
    async def follow(self) -> AsyncIterator[asyncio.Queue[Shown]]:
        """A queue that gets every message added from now on, while the context lasts."""
        queue: asyncio.Queue[Shown] = asyncio.Queue(FOLLOW_QUEUE)
        self._followers.add(queue)
        try:
            yield queue
        finally:
            self._followers.discard(queue)
