"""The sandbox channel: chats that live in the service (bot.sandbox.chats), played from the
/sandbox page or by code (the demo's simulated people).

Inbound: a participant's event goes through the conversation core like any channel's
(`Conversations.handle`); her message and the replies are added to her chat. Outbound: the
outbox rows for sandbox chats are delivered by `SandboxSender` (bot.sandbox.sender)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from bot.sandbox.chats import Chats, Participant, Shown, ShownFile
from bot.sandbox.sender import SandboxSender
from core.bootstrap import Services
from core.conversations.events import Command, Contact, Event, Location, Press, Text, Upload
from core.conversations.replies import Reply
from core.errors import DomainError
from core.models import Channel
from core.notify.messages import stored
from core.people.identities import ChatRef, Person, attach
from core.storage import Files, StorageError

log = logging.getLogger(__name__)
KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class UnknownParticipant(DomainError):
    """No participant has this key (a page out of date, or a typo in code)."""


def chat_of(participant: Participant) -> ChatRef:
    return ChatRef(Channel.SANDBOX, participant.key, participant.key)


async def as_shown(reply: Reply, files: Files) -> dict[str, object]:
    """The parts of a reply a sandbox chat shows (the text is passed on its own); a kept file
    is read through the storage now (a file that is gone shows as missing)."""
    parts: dict[str, object] = {
        "buttons": tuple((b.label, b.data) for b in reply.buttons),
        "ask_location": reply.ask_location,
    }
    if reply.choices is not None:
        parts["choices"] = tuple((b.label, b.data) for b in reply.choices.rows)
        parts["title"] = reply.choices.title
    if reply.link is not None:
        parts["link"] = (reply.link.label, reply.link.url)
    if (out := reply.file) is not None:
        content = out.content
        if content is None and out.path is not None:
            try:
                content = await stored(files, out.path)
            except StorageError:
                log.warning("sandbox: %s could not be read", out.path, exc_info=True)
        parts["file"] = ShownFile(out.kind, out.name, content, None)
    return parts


def described(event: Event) -> str:
    """A participant's own message as her chat shows it."""
    match event:
        case Command(name, args):
            return f"/{name} {args}".rstrip()
        case Text(text):
            return text
        case Press(data):
            return f"[{data}]"
        case Location(lat=lat, lon=lon, live=live):
            return f"{'📡' if live else '📍'} {lat:.5f}, {lon:.5f}"
        case Upload(kind=kind, name=name, caption=caption):
            return f"{'📷' if kind == 'photo' else '📄'} {name} {caption}".rstrip()
        case Contact(phone):
            return f"☎ {phone}"
    return type(event).__name__


class SandboxChannel:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.chats = Chats(ZoneInfo(services.settings.app.timezone))
        self.sender = SandboxSender(services, self.chats)
        self._sending: asyncio.Task[None] | None = None
        self._turns: dict[str, asyncio.Lock] = {}  # one turn at a time per chat, as a person

    async def join(
        self, key: str, member_id: int, name: str, role: str, language: str = "en"
    ) -> Participant:
        """Make member `member_id` a participant: her sandbox chat identity is stored (so the
        core and the outbox reach her there) and her chat is opened here."""
        if not KEY.fullmatch(key):
            raise ValueError(f"a sandbox key is lower-case letters, digits and '-': {key!r}")
        participant = Participant(key, member_id, name, role, language)
        async with self.services.db.transaction() as session:
            await attach(session, member_id, chat_of(participant))
        self.chats.join(participant)
        return participant

    def participant(self, key: str) -> Participant:
        found = self.chats.participants.get(key)
        if found is None:
            raise UnknownParticipant("sandbox.unknown_participant", key=key[:64])
        return found

    async def send(self, key: str, event: Event, *, shown: str | None = None) -> list[Shown]:
        """`key`'s participant sends `event`; what the core answered, as added to her chat."""
        participant = self.participant(key)
        async with self._turns.setdefault(key, asyncio.Lock()):
            now = self.services.clock()
            if isinstance(event, Press) and shown is None:  # what she saw on the button
                shown = self.chats.label(key, event.data)
            if not (isinstance(event, Location) and event.update):  # a live share's move: quiet
                self.chats.add(key, True, shown or described(event), now)
            person = Person(participant.name, participant.language)
            replies = await self.services.conversations.handle(chat_of(participant), person, event)
            return [await self.show(key, reply) for reply in replies]

    async def show(self, key: str, reply: Reply) -> Shown:
        shown = await as_shown(reply, self.services.files)
        return self.chats.add(key, False, reply.text, self.services.clock(), **shown)

    def start(self) -> None:
        self._sending = asyncio.create_task(self.sender.run())

    async def stop(self) -> None:
        self.sender.stop()
        if self._sending is not None:
            await self._sending
            self._sending = None


def photo_upload(content: bytes, name: str, caption: str = "") -> Upload:
    """An uploaded photo whose bytes are at hand."""

    async def fetch() -> bytes:
        return content

    fetched: Callable[[], Awaitable[bytes]] = fetch
    return Upload("photo", fetched, name=name, caption=caption, size=len(content))
