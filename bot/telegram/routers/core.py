"""Every message, live-location update and button press goes to the conversation core as an
inbound event; its replies come back as Bot API calls (bot.telegram.conversation)."""

from __future__ import annotations

from aiogram import Bot, F
from aiogram.types import CallbackQuery, Message

from bot.telegram.conversation import answer, chat_of, event_of, person_of
from bot.telegram.routes import Routes
from core.bootstrap import Services
from core.conversations import Press, Text
from core.people.members import Identity

router = Routes("core")


async def _message(message: Message, bot: Bot, svc: Services, who: Identity, edited: bool) -> None:
    user = message.from_user
    assert user is not None  # the Identify middleware lets no update without one through
    event = event_of(message, bot, edited=edited) or Text("")  # a sticker: help follows
    await answer(bot, svc, chat_of(user, message.chat.id), person_of(user), event, who)


@router.message()
async def msg_any(message: Message, bot: Bot, svc: Services, who: Identity) -> None:
    await _message(message, bot, svc, who, edited=False)


@router.edited_message(F.location)
async def msg_location_edit(message: Message, bot: Bot, svc: Services, who: Identity) -> None:
    await _message(message, bot, svc, who, edited=True)


@router.callback_query()
async def cb_any(callback: CallbackQuery, bot: Bot, svc: Services, who: Identity) -> None:
    user = callback.from_user
    chat_id = callback.message.chat.id if callback.message else user.id
    event = Press(callback.data or "")
    await answer(bot, svc, chat_of(user, chat_id), person_of(user), event, who, callback=callback)
