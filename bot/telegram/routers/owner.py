"""Owners: their pushed reports on and off (`/reports on|off`, the button under a report)."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.telegram.filters import STAFF
from bot.telegram.keyboards import Act
from bot.telegram.replies import answer
from bot.telegram.routes import Routes
from core.services import report_push
from core.services.hub import Services
from core.services.members import Identity
from core.texts import t

router = Routes("owner")
router.guard(STAFF, ("message", "callback_query"))


@router.message(Command("reports"))
async def cmd_reports(
    message: Message, command: CommandObject, svc: Services, who: Identity, lang: str
) -> None:
    assert who.member_id is not None
    key = await report_push.switch(svc.db, who.member_id, command.args or "")
    await message.answer(t(key, lang, at=f"{svc.settings.reports.daily_at:%H:%M}"))


@router.callback_query(Act.filter(F.name == "reports.off"))
async def cb_reports_off(callback: CallbackQuery, svc: Services, who: Identity, lang: str) -> None:
    assert who.member_id is not None
    await callback.answer()
    key = await report_push.switch(svc.db, who.member_id, "off")
    await answer(callback, t(key, lang, at=f"{svc.settings.reports.daily_at:%H:%M}"))
