"""Owners (and dispatchers): their pushed reports on and off (`/reports on|off`, the button
under a report)."""

from __future__ import annotations

from core.conversations import buttons
from core.conversations.engine import Flow
from core.conversations.events import Command, Event, Press
from core.conversations.turn import Turn
from core.models import Role
from core.reports import push
from core.texts import t


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Command) and event.name == "reports":
        await _switch(turn, event.args)
        return True
    if isinstance(event, Press):
        data = buttons.parse(event.data)
        if isinstance(data, buttons.Act) and data.name == "reports.off":
            await _switch(turn, "off")
            return True
    return False


async def _switch(turn: Turn, word: str) -> None:
    key = await push.switch(turn.svc.db, turn.member_id, word or "")
    turn.say(t(key, turn.lang, at=f"{turn.svc.settings.reports.daily_at:%H:%M}"))


FLOW = Flow("owner", frozenset({Role.DISPATCHER, Role.OWNER}), run)
