"""For everyone: /start (plain, an invite link, an order's subscribe link), /cancel, /help, and
/here (a person with several chats, e.g. Telegram and WhatsApp, is reached in this one; opening a
link in a chat chooses it too)."""

from __future__ import annotations

import logging

from core.conversations.engine import Flow
from core.conversations.events import Command, Event
from core.conversations.turn import Turn
from core.conversations.wording import status_line
from core.drivers.stops import ref_of
from core.people import customers, identities, members
from core.people.members import help_text
from core.texts import t

log = logging.getLogger(__name__)


async def run(turn: Turn, event: Event) -> bool:
    if not isinstance(event, Command):
        return False
    if event.name == "start":
        if event.args.strip():
            await start_link(turn, event.args.strip())
        elif turn.who.known:
            turn.say(help_text(turn.who))
        else:
            name = await turn.svc.conversations.channel(turn.chat).display_name()
            turn.say(t("start.welcome", turn.lang, bot=name))
        return True
    if event.name == "cancel":
        await turn.finish()
        turn.say(t("cancelled", turn.lang))
        return True
    if event.name == "help":
        turn.say(help_text(turn.who))
        return True
    if event.name == "here":
        if await identities.reach_here(turn.svc.db, turn.chat):
            turn.say(t("here.done", turn.lang))
        else:
            turn.say(help_text(turn.who))
        return True
    return False


async def start_link(turn: Turn, token: str) -> None:
    """An invite (join with its role) or an order's subscribe link (its updates come here)."""
    conversations, db = turn.svc.conversations, turn.svc.db
    conversations.forget(turn.chat)
    role = await members.redeem_invite(db, token, turn.chat, turn.person, now=turn.svc.clock())
    if role is not None:
        fresh = await conversations.identify(turn.chat, turn.person)
        lang = fresh.language  # staff now, so the staff language
        await identities.reach_here(db, turn.chat)  # she opened the link here
        turn.say(t("start.joined", lang, name=turn.person.name, role=t(f"role.a.{role}", lang)))
        turn.say(help_text(fresh))
        await _menu(turn, fresh)
        return
    order = await members.subscribe(db, token, turn.chat, turn.person)
    if order is None:
        log.info("unknown start link in %s chat %s", turn.chat.channel, turn.chat.chat_id)
        turn.say(t("start.unknown_link", turn.lang))
        return
    conversations.forget(turn.chat)
    await identities.reach_here(db, turn.chat)  # she opened the link here
    fresh = await conversations.identify(turn.chat, turn.person)
    assert fresh.member_id is not None
    views = [v for v in await customers.orders_of(db, fresh.member_id) if v.order_id == order.id]
    line = status_line(turn, views[0]) if views else ""
    turn.say(t("start.subscribed", turn.lang, ref=ref_of(order), status=line))
    await _menu(turn, fresh)


async def _menu(turn: Turn, who: members.Identity) -> None:
    try:
        await turn.svc.conversations.channel(turn.chat).roles_changed(turn.chat, who)
    except Exception:  # a menu is a convenience
        log.warning("could not update the menu of %s", turn.chat, exc_info=True)


FLOW = Flow("common", None, run)
