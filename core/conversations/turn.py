"""One turn of a conversation: who wrote, in which chat, where they are, and what we answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from core.conversations.replies import Reply
from core.conversations.state import StateStore, Step
from core.models import Channel
from core.orders.lifecycle import Actor
from core.people.identities import ChatRef, Identity, Person

if TYPE_CHECKING:
    from core.bootstrap import Services

Send = Callable[[Reply], Awaitable[None]]


@dataclass
class Turn:
    svc: Services
    chat: ChatRef
    person: Person
    who: Identity
    states: StateStore
    step: Step | None = None
    send: Send | None = None  # set by channels that can show replies as they come (progress)
    replies: list[Reply] = field(default_factory=list)
    sent: int = 0  # replies handed to `send` already

    @property
    def lang(self) -> str:
        return self.who.language

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.svc.settings.app.timezone)

    @property
    def member_id(self) -> int:
        assert self.who.member_id is not None
        return self.who.member_id

    @property
    def driver_id(self) -> int:
        assert self.who.driver_id is not None
        return self.who.driver_id

    @property
    def actor(self) -> Actor:
        return Actor.member(self.member_id)

    def mini_app_user(self) -> int | None:
        """The Telegram user a staff web view opens for as a Mini App, where the chat has them
        (`TELEGRAM_MINI_APPS`; unset: when the service is reached over https)."""
        mini_apps = self.svc.settings.telegram.mini_apps
        if mini_apps is None:
            mini_apps = self.svc.settings.app.base_url.scheme == "https"
        telegram = self.chat.channel is Channel.TELEGRAM and mini_apps
        return int(self.chat.external_id) if telegram else None

    def say(self, text: str, **options: Any) -> None:
        self.replies.append(Reply(text, **options))

    async def flush(self) -> None:
        """Show what was said so far now, where the channel can (a progress line)."""
        if self.send is None:
            return
        for reply in self.replies[self.sent :]:
            await self.send(reply)
        self.sent = len(self.replies)

    def at(self, name: str) -> bool:
        """True while the chat is at step `name` (or, with a trailing ".", any step of a flow)."""
        if self.step is None:
            return False
        return self.step.name.startswith(name) if name.endswith(".") else self.step.name == name

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.step.data) if self.step else {}

    async def goto(self, name: str, **data: Any) -> None:
        """Move to step `name`, keeping what was gathered and adding `data`."""
        self.step = Step(name, {**self.data, **data})
        await self.states.put(self.chat, self.step, self.svc.clock())

    async def finish(self) -> None:
        """The conversation is over (done or cancelled)."""
        if self.step is not None:
            self.step = None
        await self.states.clear(self.chat)
