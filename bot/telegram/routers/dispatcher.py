"""Dispatchers and owners: orders, drivers, dispatching, imports, invites, reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, F
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.telegram import keyboards as kb
from bot.telegram.filters import STAFF
from bot.telegram.keyboards import Act, AssignCb, OrderCb, SlotCb
from bot.telegram.replies import (
    answer,
    bot_username,
    new_slot_buttons,
    when,
    window,
    zone,
)
from bot.telegram.routers import neworder
from bot.telegram.routes import Routes
from bot.telegram.states import Import
from core.errors import DomainError
from core.lifecycle import Actor, Change, Window
from core.models import OrderStatus, Role
from core.services import board, imports, invites, orders, reports, tracking
from core.services.dispatch import DispatchReport
from core.services.hub import Services
from core.services.members import Identity
from core.services.messages import tracking_link
from core.services.plan_figures import plan_figures
from core.texts import t

log = logging.getLogger(__name__)
router = Routes("dispatcher")
router.guard(STAFF, ("message", "callback_query"))
router.include(neworder.router)
ALIASES = {"open": None, "waiting": OrderStatus.NEW, "out": OrderStatus.OUT_FOR_DELIVERY}
PROGRESS_EVERY_S = 1.0
REPORT_ROWS = 20


def actor(who: Identity) -> Actor:
    assert who.member_id is not None
    return Actor.member(who.member_id)


@router.message(Command("orders"))
async def cmd_orders(message: Message, command: CommandObject, svc: Services, lang: str) -> None:
    word = (command.args or "").strip().lower().replace(" ", "_")
    try:
        status = ALIASES.get(word) if word in ALIASES or not word else OrderStatus(word)
    except ValueError:
        names = ", ".join([*ALIASES, *(s.value for s in OrderStatus)])
        await message.answer(t("orders.bad_status", lang, text=word, statuses=names))
        return
    lines, total = await board.list_orders(svc.db, status)
    which = f" ({t(f'status.{status}', lang)})" if status else ""
    if not lines:
        await message.answer(t("orders.none", lang, which=which))
        return
    more = t("orders.more", lang, shown=len(lines)) if total > len(lines) else ""
    text = [t("orders.header", lang, count=total, which=which, more=more)]
    for line in lines:
        driver = f" · {line.driver}" if line.driver else ""
        text.append(
            t(
                "orders.line",
                lang,
                ref=line.ref,
                status=t(f"status.{line.status}", lang),
                address=line.address[:60],
                driver=driver,
            )
        )
    await message.answer("\n".join(text))


async def _card(
    bot: Bot, svc: Services, order_id: int, lang: str
) -> tuple[str, kb.InlineKeyboardMarkup]:
    card = await board.order_card(svc.db, order_id)
    username = await bot_username(bot, svc)
    subscribe = invites.deep_link(username, card.tracking_token) if username else None
    text = t(
        "order.card",
        lang,
        ref=card.ref,
        status=t(f"status.{card.status}", lang),
        customer=card.customer,
        phone=f" · {card.phone}" if card.phone else "",
        address=card.address,
        unlocated="" if card.located else t("order.unlocated", lang),
        window=f"{window(svc, *card.window)}\n" if card.window else "",
        driver=t("order.card_driver", lang, driver=card.driver) if card.driver else "",
        eta=t("order.card_eta", lang, eta=when(svc, card.eta)) if card.eta else "",
        attempts=card.attempts,
        notes=t("order.card_notes", lang, notes=card.notes) if card.notes else "",
        link=tracking_link(svc.settings, card.tracking_token),
        subscribe=t("order.card_subscribe", lang, link=subscribe) if subscribe else "",
        proof=_proof_link(svc, card.photo_proof_id, lang),
    )
    return text, kb.order_actions(order_id, card.status, lang)


def _proof_link(svc: Services, proof_id: int | None, lang: str) -> str:
    if proof_id is None:
        return ""
    url, until = svc.signer.proof_url(proof_id, svc.clock())
    return t("order.proof_link", lang, url=url, until=when(svc, until))


@router.message(Command("order"))
async def cmd_order(
    message: Message, command: CommandObject, bot: Bot, svc: Services, lang: str
) -> None:
    arg = (command.args or "").strip()
    if not arg:
        await message.answer(t("order.usage", lang))
        return
    text, markup = await _card(bot, svc, await board.find_order(svc.db, arg), lang)
    await message.answer(text, reply_markup=markup)


@router.callback_query(Act.filter(F.name == "order.open"))
async def cb_open(
    callback: CallbackQuery, callback_data: Act, bot: Bot, svc: Services, lang: str
) -> None:
    await callback.answer()
    text, markup = await _card(bot, svc, callback_data.id, lang)
    await answer(callback, text, reply_markup=markup)


@router.callback_query(OrderCb.filter(F.op == "assign"))
@router.callback_query(Act.filter(F.name == "order.assign"))
async def cb_pick_driver(
    callback: CallbackQuery, callback_data: OrderCb | Act, svc: Services, lang: str
) -> None:
    await callback.answer()
    order_id = callback_data.order if isinstance(callback_data, OrderCb) else callback_data.id
    card = await board.order_card(svc.db, order_id)
    choices = [(d.driver_id, d.name) for d in await board.drivers(svc.db)]
    if not choices:
        await answer(callback, t("drivers.none", lang))
        return
    await answer(
        callback,
        t("order.pick_driver", lang, ref=card.ref),
        reply_markup=kb.drivers(order_id, choices),
    )


@router.callback_query(AssignCb.filter())
async def cb_assign(
    callback: CallbackQuery, callback_data: AssignCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    await answer(callback, await _assign(svc, who, callback_data.order, callback_data.driver, lang))


async def _assign(svc: Services, who: Identity, order_id: int, driver_id: int, lang: str) -> str:
    """Assign; say so naming the driver she chose (a refusal is raised, and answered, instead)."""
    name = await svc.dispatcher.assign_manually(order_id, driver_id, actor(who))
    card = await board.order_card(svc.db, order_id)
    return t("order.assigned", lang, ref=card.ref, driver=name)


@router.message(Command("assign"))
async def cmd_assign(
    message: Message, command: CommandObject, svc: Services, who: Identity, lang: str
) -> None:
    parts = (command.args or "").split(maxsplit=1)
    if len(parts) != 2:
        await message.answer(t("assign.usage", lang))
        return
    order_id = await board.find_order(svc.db, parts[0])
    driver_id = await board.find_driver(svc.db, parts[1])
    await message.answer(await _assign(svc, who, order_id, driver_id, lang))


@router.callback_query(OrderCb.filter(F.op == "cancel"))
@router.callback_query(Act.filter(F.name == "order.cancel"))
async def cb_cancel(
    callback: CallbackQuery, callback_data: OrderCb | Act, svc: Services, lang: str
) -> None:
    await callback.answer()
    order_id = callback_data.order if isinstance(callback_data, OrderCb) else callback_data.id
    card = await board.order_card(svc.db, order_id)
    await answer(
        callback,
        t("order.cancel_confirm", lang, ref=card.ref),
        reply_markup=kb.confirm_cancel(order_id, lang),
    )


async def _offer_slots(
    callback: CallbackQuery, svc: Services, order_id: int, key: str, by: str, lang: str
) -> None:
    """The order's next slots as buttons (`by`: what picking one does), under text `key`."""
    await callback.answer()
    card = await board.order_card(svc.db, order_id)
    await answer(
        callback, t(key, lang, ref=card.ref), reply_markup=new_slot_buttons(svc, order_id, by)
    )


async def _slot_taken(
    callback: CallbackQuery, svc: Services, order_id: int, chosen: Window, key: str, lang: str
) -> None:
    card = await board.order_card(svc.db, order_id)
    slot = window(svc, chosen.starts_at, chosen.ends_at)
    await answer(callback, t(key, lang, ref=card.ref, window=slot))


@router.callback_query(Act.filter(F.name == "order.change_window"))
async def cb_change_window(
    callback: CallbackQuery, callback_data: Act, svc: Services, lang: str
) -> None:
    await _offer_slots(callback, svc, callback_data.id, "order.window_pick", "w", lang)


@router.callback_query(SlotCb.filter(F.by == "w"))
async def cb_window(
    callback: CallbackQuery, callback_data: SlotCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    chosen = callback_data.window()
    await orders.change_window(svc.db, callback_data.order, chosen, actor(who), zone=zone(svc))
    await _slot_taken(callback, svc, callback_data.order, chosen, "order.window_changed", lang)


@router.callback_query(OrderCb.filter(F.op == "cancel_yes"))
async def cb_cancel_yes(
    callback: CallbackQuery, callback_data: OrderCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    order_id = callback_data.order
    card = await board.order_card(svc.db, order_id)
    await orders.change_status(
        svc.db, order_id, OrderStatus.CANCELLED, actor(who), rules=svc.settings.orders
    )
    await answer(callback, t("order.cancelled", lang, ref=card.ref))


@router.callback_query(Act.filter(F.name == "order.return"))
async def cb_return(
    callback: CallbackQuery, callback_data: Act, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    card = await board.order_card(svc.db, callback_data.id)
    await orders.change_status(
        svc.db, callback_data.id, OrderStatus.RETURNED, actor(who), rules=svc.settings.orders
    )
    await answer(callback, t("order.returned", lang, ref=card.ref))


@router.callback_query(Act.filter(F.name == "order.reschedule"))
async def cb_reschedule(
    callback: CallbackQuery, callback_data: Act, svc: Services, lang: str
) -> None:
    await _offer_slots(callback, svc, callback_data.id, "order.reschedule_pick", "d", lang)


@router.callback_query(SlotCb.filter(F.by == "d"))
async def cb_slot(
    callback: CallbackQuery, callback_data: SlotCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    chosen = callback_data.window()
    await orders.change_status(
        svc.db,
        callback_data.order,
        OrderStatus.RESCHEDULED,
        actor(who),
        Change(windows=[chosen]),
        rules=svc.settings.orders,
    )
    await _slot_taken(callback, svc, callback_data.order, chosen, "order.rescheduled", lang)


@router.callback_query(Act.filter(F.name == "driver.ask_location"))
async def cb_ask_location(
    callback: CallbackQuery, callback_data: Act, svc: Services, who: Identity, lang: str
) -> None:
    await tracking.ask_location(svc.db, callback_data.id, by=who.member_id)
    await callback.answer("✓")


@router.message(Command("drivers"))
async def cmd_drivers(message: Message, svc: Services, lang: str) -> None:
    lines = await board.drivers(svc.db)
    if not lines:
        await message.answer(t("drivers.none", lang))
        return
    now = svc.clock()
    out = []
    for d in lines:
        seen = ""
        if d.last_seen:
            minutes = int((now - d.last_seen).total_seconds() // 60)
            live = t("drivers.live", lang) if d.live_until and d.live_until > now else ""
            seen = t("drivers.seen", lang, minutes=minutes, live=live)
        nxt = t("drivers.next", lang, stop=d.next_stop) if d.next_stop else ""
        out.append(
            t(
                "drivers.line",
                lang,
                mark="🟢" if d.on_shift else "⚪",
                name=d.name,
                load=t("drivers.load", lang, count=d.load),
                seen=seen,
                next=nxt,
            )
        )
    await message.answer("\n".join(out))


@router.message(Command("dispatch"))
async def cmd_dispatch(message: Message, svc: Services, who: Identity, lang: str) -> None:
    progress = await message.answer(t("optimize.working", lang))
    report = await _with_progress(progress, svc.dispatcher.dispatch_day(actor(who)), lang)
    if not report.assigned and not report.unassigned and not report.skipped:
        await progress.edit_text(t("dispatch.nothing", lang))
        return
    lines = [
        t("dispatch.summary", lang, assigned=len(report.assigned), left=len(report.unassigned))
    ]
    assigned, left = report.assigned[:REPORT_ROWS], list(report.unassigned.items())[:REPORT_ROWS]
    refs = await board.refs(svc.db, {a.order_id for a in assigned} | {o for o, _ in left})
    lines += [t("dispatch.line", lang, ref=refs[a.order_id], driver=a.driver) for a in assigned]
    lines += [t("dispatch.left", lang, ref=refs[o], reason=why) for o, why in left]
    lines += [*_skipped(report, lang), await _figures(svc, lang)]
    await progress.edit_text("\n".join(lines))


@router.message(Command("optimize"))
async def cmd_optimize(message: Message, svc: Services, who: Identity, lang: str) -> None:
    progress = await message.answer(t("optimize.working", lang))
    report = await _with_progress(progress, svc.dispatcher.optimize(actor(who)), lang)
    minutes, km = report.seconds_saved // 60, round(report.metres_saved / 1000, 1)
    if minutes <= 0 and km <= 0:
        text = t("optimize.no_gain", lang)
    else:
        text = t("optimize.result", lang, minutes=minutes, km=km)
    await progress.edit_text("\n".join([text, *_skipped(report, lang), await _figures(svc, lang)]))


async def _figures(svc: Services, lang: str) -> str:
    """One line: what the plan in force costs from now on."""
    plan = await plan_figures(svc.dispatcher)
    total = plan.total
    return t(
        "plan.figures",
        lang,
        drivers=total.vans,
        stops=total.stops,
        paid=f"{total.paid_hours:.1f}",
        drive=f"{total.drive_hours:.1f}",
        km=f"{total.km:.1f}",
        cost=f"{total.cost:.2f}",
        per_hour=f"{plan.cost_per_hour:g}",
        per_km=f"{plan.cost_per_km:g}",
    )


def _skipped(report: DispatchReport, lang: str) -> list[str]:
    """Orders that changed while the plan was made (a manual choice, a start): left as is."""
    return [
        t("dispatch.left", lang, ref=f"#{o}", reason=why)
        for o, why in list(report.skipped.items())[:REPORT_ROWS]
    ]


async def _with_progress(progress: Message, work, lang: str):
    """Run `work`, editing the progress message every second while it runs."""
    task = asyncio.ensure_future(work)
    seconds = 0
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
        if done:
            break
        seconds += 1
        with contextlib.suppress(TelegramBadRequest):
            await progress.edit_text(t("optimize.progress", lang, seconds=seconds))
    return task.result()


@router.message(Command("import"))
async def cmd_import(message: Message, state, lang: str) -> None:
    await state.set_state(Import.file)
    await message.answer(t("import.prompt", lang))


@router.message(Import.file, F.document)
async def msg_import_file(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state
) -> None:
    document = message.document
    assert document is not None
    name = (document.file_name or "").lower()
    if not name.endswith((".csv", ".txt")) and document.mime_type not in ("text/csv", "text/plain"):
        await message.answer(t("import.not_csv", lang))
        return
    if (document.file_size or 0) > imports.MAX_BYTES:
        raise DomainError("error.csv_too_big", limit_mb=imports.MAX_BYTES // (1024 * 1024))
    file = await bot.get_file(document.file_id)
    assert file.file_path is not None
    data = await bot.download_file(file.file_path)
    assert data is not None
    text = imports.decode(data.read())
    await state.clear()
    report = await imports.import_orders(
        svc.db,
        text,
        actor(who),
        timezone=svc.settings.app.timezone,
        phone_region=svc.settings.app.phone_region,
        rules=svc.settings.orders,
    )
    summary = t("import.created", lang, count=len(report.created))
    if report.existing:
        summary += t("import.existing", lang, count=len(report.existing))
    lines = [summary]
    if report.errors:
        lines.append(t("import.errors", lang, count=len(report.errors)))
    lines += [
        t("import.row", lang, row=row, problem=problem)
        for row, problem in report.errors[:REPORT_ROWS]
    ]
    await message.answer("\n".join(lines))


@router.message(Import.file)
async def msg_import_other(message: Message, lang: str) -> None:
    await message.answer(t("import.not_csv", lang))


@router.message(Command("invite"))
async def cmd_invite(
    message: Message, command: CommandObject, bot: Bot, svc: Services, who: Identity, lang: str
) -> None:
    word = (command.args or "").strip().lower()
    allowed = {"driver": Role.DRIVER, "dispatcher": Role.DISPATCHER}
    if who.has(Role.OWNER):
        allowed["owner"] = Role.OWNER
    if word not in allowed:
        usage = "invite.usage_owner" if who.has(Role.OWNER) else "invite.usage"
        await message.answer(t(usage, lang))
        return
    username = await bot_username(bot, svc)
    if not username:
        await message.answer(t("invite.no_username", lang))
        return
    days = 7
    _, token = await invites.create_invite(
        svc.db, allowed[word], invites.parse_duration(f"{days}d"), who.member_id
    )
    link = invites.deep_link(username, token)
    valid = t("time.days", lang, count=days)
    caption = t("invite.created", lang, role=t(f"role.{word}", lang), valid=valid, link=link)
    await message.answer_photo(
        BufferedInputFile(invites.qr_png(link), "invite.png"), caption=caption
    )


@router.message(Command("report"))
async def cmd_report(message: Message, command: CommandObject, svc: Services, lang: str) -> None:
    now = svc.clock()
    period = reports.named(command.args or "today", now, zone(svc))
    files = await reports.build(svc.db, svc.settings, period, lang, now=now)
    await message.answer(files.text)
    await message.answer_photo(BufferedInputFile(files.chart_png, files.chart_name))
    await message.answer_document(BufferedInputFile(files.csv, files.csv_name))
