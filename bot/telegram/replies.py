"""Small rendering helpers shared by the routers (no business rules)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.telegram import keyboards
from core.services.customers import OrderStatusView, new_slots
from core.services.hub import Services
from core.services.members import TelegramUser
from core.services.messages import clock, span, tracking_link
from core.texts import t


def tg_user(event: Message | CallbackQuery) -> TelegramUser:
    user = event.from_user
    assert user is not None
    if isinstance(event, CallbackQuery):
        chat_id = event.message.chat.id if event.message else user.id
    else:
        chat_id = event.chat.id
    return TelegramUser(user.id, chat_id, user.full_name, user.language_code)


def zone(svc: Services) -> ZoneInfo:
    return ZoneInfo(svc.settings.app.timezone)


def when(svc: Services, moment: datetime | None) -> str:
    return clock(moment, zone(svc))


def window(svc: Services, start: datetime, end: datetime, lang: str | None = None) -> str:
    return span(start, end, zone(svc), lang)


def status_line(svc: Services, view: OrderStatusView, lang: str) -> str:
    eta_line = t("msg.eta_line", lang, eta=when(svc, view.eta)) if view.eta else ""
    driver_line = t("customer.driver_line", lang, driver=view.driver) if view.driver else ""
    return t(
        "customer.order_line",
        lang,
        ref=view.ref,
        status=t(f"status.{view.status}", lang),
        eta_line=eta_line,
        driver_line=driver_line,
        link=tracking_link(svc.settings, view.tracking_token),
    )


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
