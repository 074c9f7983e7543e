"""Small rendering helpers shared by the routers (no business rules)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardMarkup

from bot.telegram import keyboards
from core.services.customers import new_slots
from core.services.hub import Services
from core.services.messages import clock, span


def zone(svc: Services) -> ZoneInfo:
    return ZoneInfo(svc.settings.app.timezone)


def when(svc: Services, moment: datetime | None) -> str:
    return clock(moment, zone(svc))


def window(svc: Services, start: datetime, end: datetime, lang: str | None = None) -> str:
    return span(start, end, zone(svc), lang)


async def answer(callback: CallbackQuery, text: str, **kwargs: object) -> None:
    """Answer a button press with a message in its chat (handlers acknowledge the press first)."""
    if callback.message is not None:
        await callback.bot.send_message(callback.message.chat.id, text, **kwargs)  # type: ignore[union-attr,arg-type]


def new_slot_buttons(
    svc: Services, order_id: int, by: str, lang: str | None = None
) -> InlineKeyboardMarkup:
    """The next delivery slots for an order, as buttons (`by`: c customer, d dispatcher)."""
    slots = new_slots(svc.clock(), zone(svc))
    label = lambda w: window(svc, w.starts_at, w.ends_at, lang)  # noqa: E731
    return keyboards.slots(order_id, slots, label, by)


async def bot_username(bot: Bot, svc: Services) -> str | None:
    """This bot's username, which its t.me links need."""
    return svc.settings.telegram.bot_username or (await bot.me()).username
