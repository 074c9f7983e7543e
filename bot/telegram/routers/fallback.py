"""Last in line: what nothing else took gets the core's answer (a polite refusal of a command
outside your role, "this button is not for you", or the help for your role)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import CallbackQuery, Message

from bot.telegram.conversation import answer, chat_of, event_of, person_of
from bot.telegram.routes import Routes
from core.conversations import Press, Text
from core.services.hub import Services
from core.services.members import Identity

router = Routes("fallback")


@router.message()
async def msg_other(message: Message, bot: Bot, svc: Services, who: Identity) -> None:
    user = message.from_user
    assert user is not None
    event = event_of(message, bot) or Text("")
    chat = chat_of(user, message.chat.id)
    await answer(bot, svc, chat, person_of(user), event, who, fallback=True)


@router.callback_query()
async def cb_other(callback: CallbackQuery, bot: Bot, svc: Services, who: Identity) -> None:
    chat_id = callback.message.chat.id if callback.message else callback.from_user.id
    chat = chat_of(callback.from_user, chat_id)
    event = Press(callback.data or "")
    await answer(
        bot, svc, chat, person_of(callback.from_user), event, who, callback=callback, fallback=True
    )
