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
)
from pydantic import Field

from core.conversations.commands import menu
from core.lifecycle import Window
from core.models import OrderStatus, Role
from core.texts import t
from core.validation import MAX_ID

# Forged button data is refused by the filters (it matches no handler, and the fallback says the
# button is not for the person or has expired) rather than failing in the database.
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
Epoch = Annotated[int, Field(ge=0, le=4_102_444_800)]  # seconds, before 2100


class Act(CallbackData, prefix="a"):
    """An action carried by a notification (see core.services.notifications)."""

    name: str
    id: Id


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


def commands_for(roles: frozenset[Role], lang: str) -> list[BotCommand]:
    """The menu for these roles: their commands, then /help (strangers: /start and /help)."""
    return [
        BotCommand(command=name, description=t(f"command.{name}", lang)) for name in menu(roles)
    ]


def inline(rows: Iterable[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(row) for row in rows if row])


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


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
