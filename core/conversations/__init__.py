"""Every conversation of every role, defined once on channel-neutral events and replies.

A channel adapter turns a platform update into an event (`events`), calls `handle`, and renders
the replies (`replies`); outbox notices are rendered once by `render_notice`. Button data is made
and read by `buttons` (≤ 64 bytes). Where a chat is in a conversation is kept per (channel, chat)
with an expiry (`state`: the database, or Redis when REDIS_URL is set)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.conversations.channels import ChannelInfo, PlainChannel
from core.conversations.events import (
    ChatRef,
    Command,
    Contact,
    Event,
    Location,
    Person,
    Press,
    Text,
    Upload,
)
from core.conversations.notices import render_notice
from core.conversations.replies import Button, Choices, Link, OutFile, Reply
from core.conversations.turn import Send

if TYPE_CHECKING:
    from core.bootstrap import Services

__all__ = [
    "Button",
    "ChannelInfo",
    "ChatRef",
    "Choices",
    "Command",
    "Contact",
    "Event",
    "Link",
    "Location",
    "OutFile",
    "Person",
    "PlainChannel",
    "Press",
    "Reply",
    "Text",
    "Upload",
    "handle",
    "render_notice",
]


async def handle(
    svc: Services, chat: ChatRef, person: Person, event: Event, *, send: Send | None = None
) -> list[Reply]:
    """Everything the core answers to `event` from `person` in `chat`."""
    return await svc.conversations.handle(chat, person, event, send=send)
