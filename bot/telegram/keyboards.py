"""Buttons and menus. Callback data stays well under Telegram's 64 bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from pydantic import Field

from core.lifecycle import Window
from core.models import OrderStatus, Role, StopKind
from core.services.stops import FAIL_REASONS, StopView
from core.texts import t
from core.validation import MAX_ID

# Forged button data is refused by the filters (it matches no handler, and the fallback says the
# button is not for the person or has expired) rather than failing in the database.
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Epoch = Annotated[int, Field(ge=0, le=4_102_444_800)]  # seconds, before 2100


class Act(CallbackData, prefix="a"):
    """An action carried by a notification (see core.notifications)."""

    name: str
    id: Id


class StopCb(CallbackData, prefix="s"):
    op: str  # arrive | pickup | deliver | fail | undo
    order: Id


class FailCb(CallbackData, prefix="f"):
    order: Id
    reason: str


class RateCb(CallbackData, prefix="r"):
    order: Id
    stars: Annotated[int, Field(ge=1, le=5)]


class SlotCb(CallbackData, prefix="slot"):
    order: Id
    start: Epoch
    end: Epoch
    by: str  # c (customer) | d (dispatcher: reschedule) | w (dispatcher: window of a new order)

    def window(self) -> Window:
        return Window(
            datetime.fromtimestamp(self.start, UTC), datetime.fromtimestamp(self.end, UTC)
        )


class AssignCb(CallbackData, prefix="as"):
    order: Id
    driver: Id


class OrderCb(CallbackData, prefix="o"):
    op: str  # cancel | cancel_yes | assign | reschedule
    order: Id


class DraftCb(CallbackData, prefix="no"):
    op: str  # place | create | edit | abort
    index: Id = 0


class ShiftCb(CallbackData, prefix="sh"):
    op: str  # end


class RouteCb(CallbackData, prefix="rt"):
    op: str  # loaded | start


STAFF_COMMANDS = (
    "neworder",
    "orders",
    "order",
    "drivers",
    "assign",
    "dispatch",
    "optimize",
    "import",
    "invite",
    "report",
    "help",
)
COMMANDS: dict[Role | None, tuple[str, ...]] = {
    None: ("start", "help"),
    Role.CUSTOMER: ("help",),
    Role.DRIVER: ("shift", "route", "help"),
    Role.DISPATCHER: STAFF_COMMANDS,
    Role.OWNER: (*STAFF_COMMANDS[:-1], "reports", "help"),
}


def commands_for(roles: frozenset[Role], lang: str) -> list[BotCommand]:
    """The menu for these roles: their commands, then /help (strangers: /start and /help)."""
    names: list[str] = []
    for role in sorted(roles):
        names += [n for n in COMMANDS[role] if n not in names and n != "help"]
    names = [*names, "help"] if roles else list(COMMANDS[None])
    return [BotCommand(command=name, description=t(f"command.{name}", lang)) for name in names]


def inline(rows: Iterable[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(row) for row in rows if row])


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def actions(items: Sequence[dict[str, Any]], lang: str) -> InlineKeyboardMarkup | None:
    """A notification's actions as buttons; a rating becomes a row of five stars."""
    rows: list[list[InlineKeyboardButton]] = []
    for item in items:
        name, target = item["action"], int(item.get("order_id") or item.get("driver_id") or 0)
        if name == "customer.rate":
            rows.append([button(f"{n}★", RateCb(order=target, stars=n)) for n in range(1, 6)])
        else:
            rows.append([button(t(f"action.{name}", lang), Act(name=name, id=target))])
    return inline(rows) if rows else None


def stop_buttons(stop: StopView, lang: str) -> InlineKeyboardMarkup:
    order = stop.order_id
    nav = None
    if stop.lat is not None and stop.lon is not None:
        url = f"https://www.google.com/maps/dir/?api=1&destination={stop.lat},{stop.lon}"
        nav = InlineKeyboardButton(text=t("button.navigate", lang), url=url)
    if stop.kind is StopKind.PICKUP:
        first = [button(t("button.picked_up", lang), StopCb(op="pickup", order=order))]
    else:
        first = [
            button(t("button.arrived", lang), StopCb(op="arrive", order=order)),
            button(t("button.delivered", lang), StopCb(op="deliver", order=order)),
            button(t("button.failed", lang), StopCb(op="fail", order=order)),
        ]
    return inline([first, [nav] if nav else []])


def undo_button(order_id: int, lang: str) -> InlineKeyboardMarkup:
    return inline([[button(t("button.undo", lang), StopCb(op="undo", order=order_id))]])


def fail_reasons(order_id: int, lang: str) -> InlineKeyboardMarkup:
    buttons = [
        button(t(f"reason.{r}", lang), FailCb(order=order_id, reason=r)) for r in FAIL_REASONS
    ]
    return inline([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def slots(order_id: int, windows: Sequence[Window], label: Any, by: str) -> InlineKeyboardMarkup:
    return inline(
        [
            button(
                label(w),
                SlotCb(
                    order=order_id,
                    start=int(w.starts_at.timestamp()),
                    end=int(w.ends_at.timestamp()),
                    by=by,
                ),
            )
        ]
        for w in windows
    )


def order_actions(order_id: int, status: OrderStatus, lang: str) -> InlineKeyboardMarkup:
    row = []
    if status in (OrderStatus.NEW, OrderStatus.RESCHEDULED, OrderStatus.ASSIGNED):
        name = "order.reassign" if status is OrderStatus.ASSIGNED else "order.assign"
        row.append(button(t(f"action.{name}", lang), OrderCb(op="assign", order=order_id)))
    if status is OrderStatus.FAILED:
        row.append(
            button(t("action.order.reschedule", lang), Act(name="order.reschedule", id=order_id))
        )
        row.append(button(t("action.order.return", lang), Act(name="order.return", id=order_id)))
    if status not in (OrderStatus.DELIVERED, OrderStatus.RETURNED, OrderStatus.CANCELLED):
        row.append(button(t("action.order.cancel", lang), OrderCb(op="cancel", order=order_id)))
    return inline([row])


def drivers(order_id: int, choices: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    buttons = [button(name, AssignCb(order=order_id, driver=i)) for i, name in choices[:12]]
    return inline([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def confirm_cancel(order_id: int, lang: str) -> InlineKeyboardMarkup:
    return inline(
        [[button(t("button.yes_cancel", lang), OrderCb(op="cancel_yes", order=order_id))]]
    )


def places(labels: Sequence[str]) -> InlineKeyboardMarkup:
    return inline(
        [[button(label[:60], DraftCb(op="place", index=i))] for i, label in enumerate(labels)]
    )


def draft_confirm(lang: str) -> InlineKeyboardMarkup:
    return inline(
        [
            [
                button(t("button.confirm", lang), DraftCb(op="create")),
                button(t("button.edit", lang), DraftCb(op="edit")),
            ],
            [button(t("button.abort", lang), DraftCb(op="abort"))],
        ]
    )


def share_location(lang: str) -> ReplyKeyboardMarkup:
    """A one-tap button for a (static) location; live sharing is started from the 📎 menu."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t("button.share_location", lang), request_location=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def end_shift(lang: str) -> InlineKeyboardMarkup:
    return inline([[button(t("shift.end_button", lang), ShiftCb(op="end"))]])


def route_buttons(lang: str, *, to_load: bool) -> InlineKeyboardMarkup:
    """On her route: "Start route" (parcels on board, first stop out for delivery) and, while
    some are not loaded yet, "Loaded" (on board from now on, nobody told yet)."""
    row = [button(t("route.start_button", lang), RouteCb(op="start"))]
    if to_load:
        row.append(button(t("route.loaded_button", lang), RouteCb(op="loaded")))
    return inline([row])
