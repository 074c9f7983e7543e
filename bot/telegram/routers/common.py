"""/start (plain, invite link, order subscribe link) and /help, for everyone."""

from __future__ import annotations

import logging

from aiogram import Bot, F
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import ChatMemberUpdated, Message

from bot.telegram.middlewares import Identify
from bot.telegram.replies import status_line, tg_user
from bot.telegram.routes import Routes
from core.services import customers, members
from core.services.hub import Services
from core.services.members import Identity, help_text
from core.services.stops import ref_of
from core.texts import t

log = logging.getLogger(__name__)
router = Routes("common")


@router.message(CommandStart(deep_link=True))
async def cmd_start_link(
    message: Message,
    command: CommandObject,
    bot: Bot,
    svc: Services,
    lang: str,
    identities: Identify,
) -> None:
    token = (command.args or "").strip()
    user = tg_user(message)
    identities.forget(user.user_id)
    role = await members.redeem_invite(svc.db, token, user)
    if role is not None:
        fresh = await members.identify_telegram(svc.db, user)
        lang = fresh.language  # staff now, so the staff language
        joined = t("start.joined", lang, name=user.name, role=t(f"role.a.{role}", lang))
        await message.answer(joined)
        await message.answer(help_text(fresh))
        await _menu(bot, message.chat.id, fresh)
        return
    order = await members.subscribe(svc.db, token, user)
    if order is None:
        log.info("unknown start link from user %s", user.user_id)
        await message.answer(t("start.unknown_link", lang))
        return
    fresh = await members.identify_telegram(svc.db, user)
    assert fresh.member_id is not None
    views = [
        v for v in await customers.orders_of(svc.db, fresh.member_id) if v.order_id == order.id
    ]
    line = status_line(svc, views[0], lang) if views else ""
    await message.answer(t("start.subscribed", lang, ref=ref_of(order), status=line))
    await _menu(bot, message.chat.id, fresh)


@router.message(CommandStart())
async def cmd_start(message: Message, bot: Bot, who: Identity, lang: str) -> None:
    if not who.known:
        me = await bot.me()
        await message.answer(t("start.welcome", lang, bot=me.full_name))
        return
    await message.answer(help_text(who))


@router.message(~StateFilter(None), F.text.regexp(r"^/(?!skip\b|cancel\b|start\b)"))
async def msg_command_midway(message: Message, lang: str) -> None:
    """Inside a conversation other commands wait: finish it or /cancel it first."""
    await message.answer(t("finish_first", lang))


@router.message(Command("cancel"))
async def cmd_cancel(message: Message, state: FSMContext, lang: str) -> None:
    await state.clear()
    await message.answer(t("cancelled", lang))


@router.message(Command("help"))
async def cmd_help(message: Message, who: Identity) -> None:
    await message.answer(help_text(who))


async def _menu(bot: Bot, chat_id: int, who: Identity) -> None:
    from bot.telegram.app import set_member_commands

    try:
        await set_member_commands(bot, chat_id, who.roles, who.language)
    except Exception:  # a menu is a convenience
        log.warning("could not set the command menu for chat %s", chat_id, exc_info=True)


@router.my_chat_member()
async def on_chat_member(event: ChatMemberUpdated, svc: Services) -> None:
    """The user blocked the bot ("kicked") or came back ("member")."""
    status = event.new_chat_member.status
    if status in ("kicked", "member"):
        await members.telegram_chat_changed(svc.db, event.from_user.id, blocked=status == "kicked")
