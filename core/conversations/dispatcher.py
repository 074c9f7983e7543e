"""Dispatchers and owners: orders, drivers, assigning, cancelling, rescheduling, planning."""

from __future__ import annotations

from core.conversations import buttons, staff
from core.conversations.engine import Flow
from core.conversations.events import Command, Event, Press
from core.conversations.replies import Button, Choices, Link
from core.conversations.turn import Turn
from core.conversations.wording import slot_choices, when, window
from core.dispatch import board
from core.drivers import positions
from core.models import OrderStatus, Role
from core.orders import service as orders
from core.orders.lifecycle import Change, Window
from core.texts import t
from core.webviews import board as live_board

ALIASES = {"open": None, "waiting": OrderStatus.NEW, "out": OrderStatus.OUT_FOR_DELIVERY}
MAX_DRIVERS = 10


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Command):
        command = COMMANDS.get(event.name)
        if command is None:
            return await staff.run(turn, event)
        await command(turn, event.args.strip())
        return True
    if isinstance(event, Press):
        return await _press(turn, buttons.parse(event.data))
    return await staff.run(turn, event)


async def _orders(turn: Turn, args: str) -> None:
    lang = turn.lang
    word = args.lower().replace(" ", "_")
    try:
        status = ALIASES.get(word) if word in ALIASES or not word else OrderStatus(word)
    except ValueError:
        names = ", ".join([*ALIASES, *(s.value for s in OrderStatus)])
        turn.say(t("orders.bad_status", lang, text=word, statuses=names))
        return
    lines, total = await board.list_orders(turn.svc.db, status)
    which = f" ({t(f'status.{status}', lang)})" if status else ""
    if not lines:
        turn.say(t("orders.none", lang, which=which))
        return
    more = t("orders.more", lang, shown=len(lines)) if total > len(lines) else ""
    text = [t("orders.header", lang, count=total, which=which, more=more)]
    for line in lines:
        driver = f" · {line.driver}" if line.driver else ""
        status_word = t(f"status.{line.status}", lang)
        text.append(
            t(
                "orders.line",
                lang,
                ref=line.ref,
                status=status_word,
                address=line.address[:60],
                driver=driver,
            )
        )
    turn.say("\n".join(text))


async def _card(turn: Turn, order_id: int) -> None:
    svc, lang = turn.svc, turn.lang
    card = await board.order_card(svc.db, order_id)
    subscribe = await svc.conversations.channel(turn.chat).start_link(card.tracking_token)
    text = t(
        "order.card",
        lang,
        ref=card.ref,
        status=t(f"status.{card.status}", lang),
        customer=card.customer,
        phone=f" · {card.phone}" if card.phone else "",
        address=card.address,
        unlocated="" if card.located else t("order.unlocated", lang),
        window=f"{window(turn, *card.window)}\n" if card.window else "",
        driver=t("order.card_driver", lang, driver=card.driver) if card.driver else "",
        eta=t("order.card_eta", lang, eta=when(turn, card.eta)) if card.eta else "",
        attempts=card.attempts,
        notes=t("order.card_notes", lang, notes=card.notes) if card.notes else "",
        link=staff.tracking(turn, card.tracking_token),
        subscribe=t("order.card_subscribe", lang, link=subscribe) if subscribe else "",
        proof=_proof_link(turn, card.photo_proof_id) + _signature_link(turn, card),
    )
    turn.say(text, buttons=_order_actions(order_id, card.status, lang))


def _proof_link(turn: Turn, proof_id: int | None) -> str:
    if proof_id is None:
        return ""
    url, until = turn.svc.signer.proof_url(proof_id, turn.svc.clock())
    return t("order.proof_link", turn.lang, url=url, until=when(turn, until))


def _signature_link(turn: Turn, card: board.OrderCard) -> str:
    if card.signature_proof_id is None:
        return ""
    url, until = turn.svc.signer.proof_url(card.signature_proof_id, turn.svc.clock())
    name = card.signed_by or "?"
    return t("order.signature_link", turn.lang, name=name, url=url, until=when(turn, until))


def _order_actions(order_id: int, status: OrderStatus, lang: str) -> tuple[Button, ...]:
    row = []
    if status in (OrderStatus.NEW, OrderStatus.RESCHEDULED, OrderStatus.ASSIGNED):
        label = "action.order.reassign" if status is OrderStatus.ASSIGNED else "action.order.assign"
        row.append(Button(t(label, lang), buttons.OrderOp("assign", order_id).pack()))
    if status is OrderStatus.FAILED:
        for name in ("order.reschedule", "order.return"):
            row.append(Button(t(f"action.{name}", lang), buttons.Act(name, order_id).pack()))
    if status not in (OrderStatus.DELIVERED, OrderStatus.RETURNED, OrderStatus.CANCELLED):
        cancel = buttons.OrderOp("cancel", order_id).pack()
        row.append(Button(t("action.order.cancel", lang), cancel))
    return tuple(row)


async def _order(turn: Turn, args: str) -> None:
    if not args:
        turn.say(t("order.usage", turn.lang))
        return
    await _card(turn, await board.find_order(turn.svc.db, args))


async def _assign_command(turn: Turn, args: str) -> None:
    parts = args.split(maxsplit=1)
    if len(parts) != 2:
        turn.say(t("assign.usage", turn.lang))
        return
    order_id = await board.find_order(turn.svc.db, parts[0])
    driver_id = await board.find_driver(turn.svc.db, parts[1])
    await _assign(turn, order_id, driver_id)


async def _assign(turn: Turn, order_id: int, driver_id: int) -> None:
    """Assign; say so naming the driver she chose (a refusal is raised, and answered, instead)."""
    name = await turn.svc.planner.assign_manually(order_id, driver_id, turn.actor)
    card = await board.order_card(turn.svc.db, order_id)
    turn.say(t("order.assigned", turn.lang, ref=card.ref, driver=name))


async def _pick_driver(turn: Turn, order_id: int) -> None:
    card = await board.order_card(turn.svc.db, order_id)
    drivers = (await board.drivers(turn.svc.db))[:MAX_DRIVERS]
    if not drivers:
        turn.say(t("drivers.none", turn.lang))
        return
    rows = tuple(Button(d.name, buttons.Assign(order_id, d.driver_id).pack()) for d in drivers)
    turn.say(t("order.pick_driver", turn.lang, ref=card.ref), choices=Choices(rows))


async def _confirm_cancel(turn: Turn, order_id: int) -> None:
    card = await board.order_card(turn.svc.db, order_id)
    yes = Button(t("button.yes_cancel", turn.lang), buttons.OrderOp("cancel_yes", order_id).pack())
    turn.say(t("order.cancel_confirm", turn.lang, ref=card.ref), buttons=(yes,))


async def _change_status(turn: Turn, order_id: int, status: OrderStatus, key: str) -> None:
    card = await board.order_card(turn.svc.db, order_id)
    rules = turn.svc.settings.orders
    await orders.change_status(turn.svc.db, order_id, status, turn.actor, rules=rules)
    turn.say(t(key, turn.lang, ref=card.ref))


async def _offer_slots(turn: Turn, order_id: int, key: str, by: str) -> None:
    """The order's next slots to pick from (`by`: what picking one does), under text `key`."""
    card = await board.order_card(turn.svc.db, order_id)
    turn.say(t(key, turn.lang, ref=card.ref), choices=slot_choices(turn, order_id, by))


async def _slot(turn: Turn, data: buttons.Slot) -> None:
    chosen: Window = data.window()
    svc = turn.svc
    if data.by == "w":
        await orders.change_window(svc.db, data.order, chosen, turn.actor, zone=turn.zone)
        key = "order.window_changed"
    else:
        await orders.change_status(
            svc.db,
            data.order,
            OrderStatus.RESCHEDULED,
            turn.actor,
            Change(windows=[chosen]),
            rules=svc.settings.orders,
        )
        key = "order.rescheduled"
    card = await board.order_card(svc.db, data.order)
    slot = window(turn, chosen.starts_at, chosen.ends_at)
    turn.say(t(key, turn.lang, ref=card.ref, window=slot))


async def _press(turn: Turn, data: buttons.Data | None) -> bool:
    if isinstance(data, buttons.Act):
        name, order_id = data.name, data.id
        if name == "order.open":
            await _card(turn, order_id)
        elif name == "order.assign":
            await _pick_driver(turn, order_id)
        elif name == "order.cancel":
            await _confirm_cancel(turn, order_id)
        elif name == "order.change_window":
            await _offer_slots(turn, order_id, "order.window_pick", "w")
        elif name == "order.reschedule":
            await _offer_slots(turn, order_id, "order.reschedule_pick", "d")
        elif name == "order.return":
            await _change_status(turn, order_id, OrderStatus.RETURNED, "order.returned")
        elif name == "driver.ask_location":
            await positions.ask_location(turn.svc.db, order_id, by=turn.who.member_id)
            turn.say("✓", alert=True)
        else:
            return False
    elif isinstance(data, buttons.OrderOp) and data.op == "assign":
        await _pick_driver(turn, data.order)
    elif isinstance(data, buttons.OrderOp) and data.op == "cancel":
        await _confirm_cancel(turn, data.order)
    elif isinstance(data, buttons.OrderOp) and data.op == "cancel_yes":
        await _change_status(turn, data.order, OrderStatus.CANCELLED, "order.cancelled")
    elif isinstance(data, buttons.Assign):
        await _assign(turn, data.order, data.driver)
    elif isinstance(data, buttons.Slot) and data.by in ("w", "d"):
        await _slot(turn, data)
    else:
        return False
    return True


async def _drivers(turn: Turn, args: str) -> None:
    lang = turn.lang
    lines = await board.drivers(turn.svc.db)
    if not lines:
        turn.say(t("drivers.none", lang))
        return
    now = turn.svc.clock()
    out = []
    for d in lines:
        seen = ""
        if d.last_seen:
            minutes = int((now - d.last_seen).total_seconds() // 60)
            live = t("drivers.live", lang) if d.live_until and d.live_until > now else ""
            seen = t("drivers.seen", lang, minutes=minutes, live=live)
        nxt = t("drivers.next", lang, stop=d.next_stop) if d.next_stop else ""
        out.append(
            t(
                "drivers.line",
                lang,
                mark="🟢" if d.on_shift else "⚪",
                name=d.name,
                load=t("drivers.load", lang, count=d.load),
                seen=seen,
                next=nxt,
            )
        )
    turn.say("\n".join(out))


async def _board(turn: Turn, args: str) -> None:
    """A button opening the live board: a Mini App where the chat has them, else a signed link."""
    telegram_user = turn.mini_app_user()
    url = await live_board.link(turn.svc, turn.member_id, telegram_user)
    button = Link(t("button.board", turn.lang), url, web_app=telegram_user is not None)
    turn.say(t("board.open", turn.lang), link=button)


COMMANDS = {
    "board": _board,
    "orders": _orders,
    "order": _order,
    "assign": _assign_command,
    "drivers": _drivers,
    "dispatch": staff.dispatch,
    "optimize": staff.optimize,
}

FLOW = Flow("dispatcher", frozenset({Role.DISPATCHER, Role.OWNER}), run)
