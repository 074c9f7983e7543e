"""The entry point every channel calls: an inbound event in, replies out.

`Conversations.handle(chat, person, event)` finds out who is writing, where they are in a
conversation, and lets the flows of their roles answer; a flow claims an event by returning True.
A refusal from a core service (`DomainError`) becomes a clear reply and changes nothing else; an
unreachable database is left to the channel (which defers the update); any other failure is
logged and answered with an apology."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.conversations import fallback
from core.conversations.channels import ChannelInfo, PlainChannel
from core.conversations.events import Command, Event, Text, Upload
from core.conversations.replies import Reply
from core.conversations.state import StateStore
from core.conversations.turn import Send, Turn
from core.db import unavailable
from core.errors import DomainError
from core.models import Channel, Role
from core.people import identities
from core.people.identities import ChatRef, Identity, Person
from core.texts import t
from core.validation import unstorable

if TYPE_CHECKING:
    from core.bootstrap import Services

log = logging.getLogger(__name__)
KNOWN_S = 30.0  # a member's roles are re-read at least this often (a location stream is busy)
KNOWN_MAX = 50_000
MIDWAY_ALLOWED = ("skip", "cancel", "start")  # commands that do not interrupt a conversation

Run = Callable[[Turn, Event], Awaitable[bool]]


@dataclass(frozen=True)
class Flow:
    """A role's conversations: `run` claims an event (True) or lets the next flow try."""

    name: str
    roles: frozenset[Role] | None  # None: everyone
    run: Run


def flows() -> Sequence[Flow]:
    from core.conversations import common, customer, dispatcher, driver, neworder, owner

    return (common.FLOW, owner.FLOW, neworder.FLOW, dispatcher.FLOW, driver.FLOW, customer.FLOW)


class Conversations:
    def __init__(self, svc: Services, states: StateStore) -> None:
        self.svc = svc
        self.states = states
        self.flows = flows()
        self.known: dict[ChatRef, tuple[float, Identity]] = {}
        self.channels: dict[Channel, ChannelInfo] = {}

    def register(self, channel: Channel, info: ChannelInfo) -> None:
        """What the flows need to know about a channel (its name, links, menus)."""
        self.channels[channel] = info

    def channel(self, chat: ChatRef) -> ChannelInfo:
        return self.channels.get(chat.channel) or PlainChannel()

    async def identify(self, chat: ChatRef, person: Person) -> Identity:
        """Who writes in this chat (members are remembered briefly; strangers never)."""
        now = time.monotonic()
        until, who = self.known.get(chat, (0.0, None))
        if who is None or until < now:
            who = await identities.identify(self.svc.db, chat, person)
            if who.known:
                if len(self.known) > KNOWN_MAX:
                    self.known.clear()
                self.known[chat] = (now + KNOWN_S, who)
        return who

    def forget(self, chat: ChatRef) -> None:
        """Their roles changed (they joined): look them up afresh next time."""
        self.known.pop(chat, None)

    async def handle(
        self,
        chat: ChatRef,
        person: Person,
        event: Event,
        *,
        send: Send | None = None,
        who: Identity | None = None,
    ) -> list[Reply]:
        """Everything the core answers to `event`. With `send`, replies may be shown as they come
        (a progress line); the list still holds them all. `who`: the person as the channel
        identified them already (through `identify`) for this update."""
        who = who or await self.identify(chat, person)
        turn = Turn(self.svc, chat, person, who, self.states, send=send)
        try:
            await self._run(turn, event)
        except DomainError as exc:
            turn.say(exc.message(turn.lang))
        except Exception as exc:
            if unavailable(exc):
                raise
            log.exception("handling %s in %s failed", type(event).__name__, chat.channel)
            turn.say(t("error.generic", turn.lang))
        return turn.replies

    async def _run(self, turn: Turn, event: Event) -> None:
        if unstorable(_words(event)):
            turn.say(t("error.unreadable", turn.lang))
            return
        turn.step = await self.states.get(turn.chat, self.svc.clock())
        if turn.step is not None and turn.step.expired:
            await turn.finish()
            if isinstance(event, Text | Upload):  # meant for a step that is gone
                turn.say(t("conversation.expired", turn.lang))
                return
        if (
            isinstance(event, Command)
            and turn.step is not None
            and event.name not in MIDWAY_ALLOWED
        ):
            turn.say(t("finish_first", turn.lang))
            return
        for flow in self.flows:
            if flow.roles is not None and not turn.who.has(*flow.roles):
                continue
            if await flow.run(turn, event):
                return
        await fallback.answer(turn, event)

    async def close(self) -> None:
        await self.states.close()


def _words(event: Event) -> str:
    """What the person typed with the event (checked before anything keeps it)."""
    if isinstance(event, Text):
        return event.text
    if isinstance(event, Command):
        return event.args
    return event.caption if isinstance(event, Upload) else ""
