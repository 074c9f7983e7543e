"""Last in line: a command outside your role is refused politely (and logged); a button that is
not for you (or forged, or expired) says so; anything else gets the help for your role."""

from __future__ import annotations

import logging

from core.conversations.commands import roles_for
from core.conversations.events import Command, Event, Location, Press
from core.conversations.turn import Turn
from core.people.members import help_text
from core.texts import t

log = logging.getLogger(__name__)


async def answer(turn: Turn, event: Event) -> None:
    who, lang = turn.who, turn.lang
    if isinstance(event, Press):
        log.warning("refused button %r for member %s", event.data[:80], who.member_id)
        turn.say(t("denied.button", lang), alert=True)
        return
    if isinstance(event, Location) and (event.update or event.ended):
        return  # a live share's later positions from someone who is not a driver: nothing to say
    if isinstance(event, Command):
        roles = roles_for(event.name)
        if roles:
            log.warning(
                "refused /%s for member %s (roles: %s)",
                event.name,
                who.member_id,
                ", ".join(sorted(who.roles)) or "none",
            )
            plural = [t(f"role.plural.{r}", lang) for r in roles if r != "owner"]
            names = ", ".join(plural) or t("role.plural.owner", lang)
            turn.say(t("denied", lang, command=f"/{event.name}", roles=names))
            return
    turn.say(f"{t('fallback.unknown', lang)}\n\n{help_text(who)}")
