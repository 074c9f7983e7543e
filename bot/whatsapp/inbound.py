"""A WhatsApp message as the conversation core's event.

Text: `/name args`, or a bare command word of the person's roles (`orders`, `shift`, …; `start`,
`help`, `cancel`, `skip` and `here` for everyone), is a Command; anything else is Text. A reply
button or list row is a Press of the id the core put on it; a location a Location; an image an
Upload of a photo and a document an Upload of a document, whose bytes are downloaded from the
Graph API only when a flow asks for them; a shared contact a Contact. Reactions, edits,
deletions and system notices are noted and not answered; anything else (audio, video, stickers,
catalogue orders, unsupported or unknown types) is answered with help (`event_of` gives None)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.whatsapp.client import GraphClient
from bot.whatsapp.payloads import Message
from core.conversations.commands import menu
from core.conversations.events import Command, Contact, Event, Location, Press, Text, Upload
from core.models import Channel
from core.people.identities import ChatRef, Identity

quiet = frozenset({"reaction", "edit", "revoke", "system"})  # noted, not answered
EVERYONE = frozenset({"start", "help", "cancel", "skip", "here"})
MAX_COMMAND = 32


def whatsapp_chat(message: Message) -> ChatRef:
    """The chat of the person who wrote: keyed by `wa_id` (the BSUID when there is none)."""
    return ChatRef(Channel.WHATSAPP, message.sender, message.sender)


def command_of(text: str, who: Identity) -> Command | None:
    """`/name args`, or a bare command word this person has, as a Command."""
    words = text.strip().split(maxsplit=1)
    if not words:
        return None
    head, args = words[0], words[1] if len(words) > 1 else ""
    if head.startswith("/") and 1 < len(head) <= MAX_COMMAND:
        return Command(head[1:].lower(), args.strip())
    name = head.lower()
    if name in EVERYONE or name in menu(who.roles):
        return Command(name, args.strip())
    return None


def _download(client: GraphClient, media_id: str) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        content, _ = await client.download(media_id)
        return content

    return fetch


def event_of(message: Message, who: Identity, client: GraphClient) -> Event | None:
    """The core event of a message (None: a kind the core does not read; answer with help)."""
    match message.kind:
        case "text":
            return command_of(message.text, who) or Text(message.text)
        case "press":
            return Press(message.data or "")
        case "location":
            assert message.lat is not None and message.lon is not None
            return Location(message.lat, message.lon, at=message.at)
        case "image" | "document":
            assert message.media_id is not None
            return Upload(
                "photo" if message.kind == "image" else "document",
                _download(client, message.media_id),
                name=message.filename,
                caption=message.text,
                mime_type=message.mime_type,
            )
        case "contacts":
            return Contact(message.phones[0])
    return None
