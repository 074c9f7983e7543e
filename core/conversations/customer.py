"""Customers: "where is my order?", a new slot after a failed attempt, instructions, ratings."""

from __future__ import annotations

from core.conversations import buttons
from core.conversations.engine import Flow
from core.conversations.events import Event, Press, Text
from core.conversations.turn import Turn
from core.conversations.wording import slot_choices, status_line, window
from core.models import Role
from core.people import customers
from core.texts import t

INSTRUCTIONS = "instructions.text"


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Text):
        return await _text(turn, event.text)
    if isinstance(event, Press):
        return await _press(turn, buttons.parse(event.data))
    return False


async def _text(turn: Turn, text: str) -> bool:
    if turn.at(INSTRUCTIONS):
        await customers.leave_instructions(turn.svc.db, turn.member_id, turn.data["order"], text)
        await turn.finish()
        turn.say(t("customer.instructions_saved", turn.lang))
        return True
    if not customers.asks_where(text):
        return False
    views = await customers.orders_of(turn.svc.db, turn.member_id)
    if not views:
        turn.say(t("customer.no_orders", turn.lang))
        return True
    turn.say("\n\n".join(status_line(turn, view) for view in views))
    return True


async def _press(turn: Turn, data: buttons.Data | None) -> bool:
    lang, db = turn.lang, turn.svc.db
    if isinstance(data, buttons.Rate):
        await customers.rate(db, turn.member_id, data.order, data.stars)
        turn.say(t("customer.rated", lang, stars=data.stars))
    elif isinstance(data, buttons.Act) and data.name == "customer.pick_new_slot":
        views = {v.order_id: v for v in await customers.orders_of(db, turn.member_id)}
        if data.id not in views:
            turn.say(t("customer.not_yours", lang, order=data.id))
        else:
            choices = slot_choices(turn, data.id, "c", lang)
            turn.say(t("customer.pick_slot", lang, ref=views[data.id].ref), choices=choices)
    elif isinstance(data, buttons.Slot) and data.by == "c":
        chosen = data.window()
        await customers.reschedule(
            db, turn.member_id, data.order, chosen, turn.actor, turn.svc.settings.orders
        )
        views = {v.order_id: v for v in await customers.orders_of(db, turn.member_id)}
        ref = views[data.order].ref if data.order in views else ""
        slot = window(turn, chosen.starts_at, chosen.ends_at, lang)
        turn.say(t("customer.rescheduled", lang, ref=ref, window=slot))
    elif isinstance(data, buttons.Act) and data.name == "customer.leave_instructions":
        await turn.goto(INSTRUCTIONS, order=data.id)
        turn.say(t("customer.instructions_prompt", lang))
    else:
        return False
    return True


FLOW = Flow("customer", frozenset({Role.CUSTOMER}), run)
