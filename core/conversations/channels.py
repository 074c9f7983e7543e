"""What a conversation needs to know about the channel it runs on, given by its adapter."""

from __future__ import annotations

from typing import Protocol

from core.people.identities import ChatRef, Identity


class ChannelInfo(Protocol):
    # whether people can share a live location here (Telegram); where they cannot (WhatsApp), a
    # driver's location pin counts as her position now and starts her route as a live share does
    live_location: bool

    async def display_name(self) -> str:
        """How the service is called in this channel (a Telegram bot's name)."""
        ...

    async def start_link(self, token: str) -> str | None:
        """A link that opens this chat with `token` (invites, order subscriptions); None when
        the channel has none."""
        ...

    async def roles_changed(self, chat: ChatRef, who: Identity) -> None:
        """The person in `chat` now has `who.roles` (a channel may update its command menu)."""
        ...


class PlainChannel:
    """A channel with no links and no menus (the default)."""

    live_location = True

    def __init__(self, name: str = "Lastmile") -> None:
        self.name = name

    async def display_name(self) -> str:
        return self.name

    async def start_link(self, token: str) -> str | None:
        return None

    async def roles_changed(self, chat: ChatRef, who: Identity) -> None:
        return None
