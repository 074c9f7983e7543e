"""What only Telegram has: `my_chat_member` (the user blocked the bot, or came back)."""

from __future__ import annotations

from aiogram.types import ChatMemberUpdated

from bot.telegram.routes import Routes
from core.bootstrap import Services
from core.people import members
from core.people.identities import telegram_chat

router = Routes("common")


@router.my_chat_member()
async def on_chat_member(event: ChatMemberUpdated, svc: Services) -> None:
    """The user blocked the bot ("kicked") or came back ("member")."""
    status = event.new_chat_member.status
    if status in ("kicked", "member"):
        chat = telegram_chat(event.from_user.id, event.chat.id)
        await members.chat_changed(svc.db, chat, blocked=status == "kicked")
