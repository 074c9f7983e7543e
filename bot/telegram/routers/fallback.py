"""Last in line: a command outside your role is refused politely (and logged); anything else
gets the help for your role."""

from __future__ import annotations

import logging

from aiogram import F
from aiogram.types import CallbackQuery, Message

from bot.telegram.keyboards import COMMANDS
from bot.telegram.routes import Routes
from core.services.members import Identity, help_text
from core.texts import t

log = logging.getLogger(__name__)
router = Routes("fallback")


def roles_for(command: str) -> list[str]:
    return [role.value for role, names in COMMANDS.items() if role is not None and command in names]


@router.message(F.text.startswith("/"))
async def msg_command(message: Message, who: Identity, lang: str) -> None:
    command = (message.text or "/").split()[0][1:].split("@")[0].lower()
    roles = roles_for(command)
    if roles:
        log.warning(
            "refused /%s for member %s (roles: %s)",
            command,
            who.member_id,
            ", ".join(sorted(who.roles)) or "none",
        )
        plural = [t(f"role.plural.{r}", lang) for r in roles if r != "owner"]
        names = ", ".join(plural) or t("role.plural.owner", lang)
        await message.answer(t("denied", lang, command=f"/{command}", roles=names))
        return
    await message.answer(f"{t('fallback.unknown', lang)}\n\n{help_text(who)}")


@router.message()
async def msg_other(message: Message, who: Identity, lang: str) -> None:
    await message.answer(f"{t('fallback.unknown', lang)}\n\n{help_text(who)}")


@router.callback_query()
async def cb_other(callback: CallbackQuery, who: Identity, lang: str) -> None:
    log.warning("refused button %r for member %s", callback.data, who.member_id)
    await callback.answer(t("denied.button", lang), show_alert=True)
