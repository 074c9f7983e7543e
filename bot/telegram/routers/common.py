"""What only Telegram has: a conversation aiogram still keeps is not interrupted by other
commands, and `my_chat_member` (the user blocked the bot, or came back)."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import StateFilter
from aiogram.types import ChatMemberUpdated, Message

from bot.telegram.routes import Routes
from core.people.identities import telegram_chat
from core.services import members
from core.services.hub import Services
from core.texts import t

router = Routes("common")


@router.message(~StateFilter(None), F.text.regexp(r"^/(?!skip\b|cancel\b|start\b)"))
async def msg_command_midway(message: Message, lang: str) -> None:
    """Inside a conversation other commands wait: finish it or /cancel it first."""
    await message.answer(t("finish_first", lang))


@router.my_chat_member()
async def on_chat_member(event: ChatMemberUpdated, svc: Services) -> None:
    """The user blocked the bot ("kicked") or came back ("member")."""
    status = event.new_chat_member.status
    if status in ("kicked", "member"):
        chat = telegram_chat(event.from_user.id, event.chat.id)
        await members.chat_changed(svc.db, chat, blocked=status == "kicked")
