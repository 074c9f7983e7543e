"""Command menus (per chat, for the roles its member holds). Buttons are the core's
(`core.conversations.buttons`); `bot.telegram.conversation` renders them."""

from __future__ import annotations

from aiogram.types import BotCommand

from core.conversations.commands import menu
from core.models import Role
from core.texts import t


def commands_for(roles: frozenset[Role], lang: str) -> list[BotCommand]:
    """The menu for these roles: their commands, then /help (strangers: /start and /help)."""
    return [
        BotCommand(command=name, description=t(f"command.{name}", lang)) for name in menu(roles)
    ]
