"""Everything the conversation core answers: messages, live-location updates and button presses
become inbound events for `core.conversations`; what no flow takes goes on to the routers that
still live here."""

from __future__ import annotations

from aiogram import Bot, F
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import CallbackQuery, Message

from bot.telegram.conversation import answer, chat_of, event_of, person_of
from bot.telegram.routes import Routes
from core.conversations import Press
from core.services.hub import Services
from core.services.members import Identity

router = Routes("core")


async def _message(message: Message, bot: Bot, svc: Services, who: Identity, edited: bool) -> None:
    event = event_of(message, bot, edited=edited)
    user = message.from_user
    if event is None or user is None:
        raise SkipHandler
    chat = chat_of(user, message.chat.id)
    if not await answer(bot, svc, chat, person_of(user), event, who):
        raise SkipHandler


@router.message()
async def msg_any(message: Message, bot: Bot, svc: Services, who: Identity) -> None:
    await _message(message, bot, svc, who, edited=False)


@router.edited_message(F.location)
async def msg_location_edit(message: Message, bot: Bot, svc: Services, who: Identity) -> None:
    await _message(message, bot, svc, who, edited=True)


@router.callback_query()
async def cb_any(callback: CallbackQuery, bot: Bot, svc: Services, who: Identity) -> None:
    if callback.message is None:
        raise SkipHandler
    chat = chat_of(callback.from_user, callback.message.chat.id)
    event = Press(callback.data or "")
    if not await answer(
        bot, svc, chat, person_of(callback.from_user), event, who, callback=callback
    ):
        raise SkipHandler
