"""Drivers: /shift, live location, /route, and the stop buttons with their proofs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from aiogram import Bot, F
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.telegram import keyboards as kb
from bot.telegram.filters import DRIVER
from bot.telegram.keyboards import Act, FailCb, RouteCb, ShiftCb, StopCb
from bot.telegram.replies import answer, when, window
from bot.telegram.routes import Routes
from bot.telegram.states import FailOther, Proof
from core.errors import DomainError
from core.lifecycle import Actor
from core.models import OrderStatus, ProofKind
from core.services import loading, proofs, shifts, stops, tracking
from core.services.hub import Services
from core.services.members import Identity
from core.services.stops import StopView
from core.texts import t

log = logging.getLogger(__name__)
router = Routes("driver")
router.guard(DRIVER, ("message", "edited_message", "callback_query"))
ROUTE_MESSAGES = 10  # stops sent as their own message with buttons; the rest are listed


def actor(who: Identity) -> Actor:
    assert who.member_id is not None
    return Actor.member(who.member_id)


def driver_id(who: Identity) -> int:
    assert who.driver_id is not None
    return who.driver_id


@router.message(Command("shift"))
async def cmd_shift(message: Message, svc: Services, who: Identity, lang: str) -> None:
    if await _on_shift(svc, who):
        await message.answer(t("shift.ask_end", lang), reply_markup=kb.end_shift(lang))
        return
    await shifts.start_shift(svc.db, driver_id(who), now=svc.clock())
    await message.answer(t("shift.started", lang), reply_markup=kb.share_location(lang))
    await svc.autopilot.driver_ready(driver_id(who))  # waiting orders; off if she shares already


async def _on_shift(svc: Services, who: Identity) -> bool:
    return await shifts.on_shift(svc.db, driver_id(who))


@router.callback_query(ShiftCb.filter(F.op == "end"))
async def cb_end_shift(callback: CallbackQuery, svc: Services, who: Identity, lang: str) -> None:
    attempts = svc.settings.orders.max_attempts
    result = await shifts.end_shift(
        svc.db, driver_id(who), actor(who), max_attempts=attempts, now=svc.clock()
    )
    await callback.answer()
    if not result.ended:
        await answer(callback, t("shift.on_board", lang, refs=", ".join(result.on_board)))
        return
    left = t("shift.left", lang, count=len(result.returned)) if result.returned else ""
    await answer(callback, t("shift.ended", lang, left=left), reply_markup=ReplyKeyboardRemove())


@router.message(F.location)
async def msg_location(message: Message, svc: Services, who: Identity, lang: str) -> None:
    location = message.location
    assert location is not None
    live = location.live_period is not None
    period = location.live_period
    until = message.date + timedelta(seconds=period) if period is not None else None
    fix = tracking.Fix(
        lat=location.latitude,
        lon=location.longitude,
        at=message.date,
        live_until=until,
        live=live,
        accuracy_m=location.horizontal_accuracy,
        heading=location.heading,
    )
    await svc.tracker.ping(driver_id(who), fix)
    if not await _on_shift(svc, who):
        await message.answer(t("shift.not_started", lang))
        return
    if live:
        await message.answer(
            t("location.live_started", lang, until=when(svc, until)),
            reply_markup=ReplyKeyboardRemove(),
        )
        await svc.stops.start_next(driver_id(who), actor(who))
        await svc.autopilot.driver_ready(driver_id(who))  # she may take waiting orders now
    else:
        await message.answer(t("location.static", lang))


@router.edited_message(F.location)
async def msg_location_edit(message: Message, svc: Services, who: Identity, lang: str) -> None:
    location = message.location
    assert location is not None
    at = datetime.fromtimestamp(message.edit_date, UTC) if message.edit_date else message.date
    if location.live_period is None:  # the final edit: she stopped sharing
        await tracking.stop_sharing(svc.db, driver_id(who), at)
        await message.answer(t("location.stopped", lang))
        return
    fix = tracking.Fix(
        lat=location.latitude,
        lon=location.longitude,
        at=at,
        live_until=message.date + timedelta(seconds=location.live_period),
        live=True,
        accuracy_m=location.horizontal_accuracy,
        heading=location.heading,
    )
    await svc.tracker.ping(driver_id(who), fix)


@router.message(Command("route"))
async def cmd_route(message: Message, svc: Services, who: Identity, lang: str) -> None:
    route = await stops.route_of(svc.db, driver_id(who))
    if not route:
        await message.answer(t("route.empty", lang))
        return
    lines = [t("route.header", lang, count=len(route))]
    lines += [_stop_text(svc, stop, lang) for stop in route[ROUTE_MESSAGES:]]
    to_load = any(s.status is OrderStatus.ASSIGNED for s in route)
    await message.answer("\n\n".join(lines), reply_markup=kb.route_buttons(lang, to_load=to_load))
    for stop in route[:ROUTE_MESSAGES]:
        await message.answer(_stop_text(svc, stop, lang), reply_markup=kb.stop_buttons(stop, lang))


@router.callback_query(RouteCb.filter(F.op == "loaded"))
async def cb_loaded(callback: CallbackQuery, svc: Services, who: Identity, lang: str) -> None:
    """She has loaded her route's parcels: from now on only she delivers them."""
    loaded = await loading.load_route(svc.db, driver_id(who), actor(who), now=svc.clock())
    await callback.answer()
    text = t("route.loaded", lang, count=len(loaded)) if loaded else t("route.loaded_none", lang)
    await answer(callback, text)


@router.callback_query(RouteCb.filter(F.op == "start"))
async def cb_start_route(callback: CallbackQuery, svc: Services, who: Identity, lang: str) -> None:
    """ "Start route": her parcels are on board and her first waiting stop goes out for
    delivery (the customer is told)."""
    await callback.answer()
    await loading.load_route(svc.db, driver_id(who), actor(who), now=svc.clock())
    route = await stops.route_of(svc.db, driver_id(who))
    if any(stop.status in stops.MOVING for stop in route):
        await answer(callback, t("route.under_way", lang))
        return
    started = await svc.stops.start_next(driver_id(who), actor(who))
    if started is None:
        await answer(callback, t("route.nothing_to_start", lang))
        return
    stop = await stops.stop_of(svc.db, driver_id(who), started)
    text = t("route.started", lang, ref=stop.ref, address=stop.address)
    await answer(callback, text, reply_markup=kb.stop_buttons(stop, lang))


@router.callback_query(Act.filter(F.name == "driver.open_order"))
async def cb_open_stop(
    callback: CallbackQuery, callback_data: Act, svc: Services, who: Identity, lang: str
) -> None:
    """The "Open stop" button of a "New stop" message: that stop, with its buttons."""
    await callback.answer()
    stop = await stops.stop_of(svc.db, driver_id(who), callback_data.id)
    await answer(callback, _stop_text(svc, stop, lang), reply_markup=kb.stop_buttons(stop, lang))


def _stop_text(svc: Services, stop: StopView, lang: str) -> str:
    window_text = t("route.window", lang, window=window(svc, *stop.window)) if stop.window else ""
    if stop.kind.value == "pickup":
        return t(
            "stop.pickup",
            lang,
            position=stop.position,
            ref=stop.ref,
            address=stop.address,
            window=window_text,
        )
    return t(
        "route.stop",
        lang,
        position=stop.position,
        ref=stop.ref,
        status=t(f"status.{stop.status}", lang),
        address=stop.address,
        eta=t("route.eta", lang, eta=when(svc, stop.eta)) if stop.eta else "",
        window=window_text,
        customer=stop.customer,
        notes=t("route.notes", lang, notes=stop.notes) if stop.notes else "",
    )


async def _next_text(svc: Services, who: Identity, lang: str) -> str:
    route = await stops.route_of(svc.db, driver_id(who))
    if not route:
        return ""
    return t("driver.next_stop", lang, ref=route[0].ref, address=route[0].address)


@router.callback_query(StopCb.filter())
async def cb_stop(
    callback: CallbackQuery,
    callback_data: StopCb,
    svc: Services,
    who: Identity,
    lang: str,
    state: FSMContext,
) -> None:
    order_id, me = callback_data.order, driver_id(who)
    await callback.answer()
    if callback_data.op == "arrive":
        await svc.stops.arrive(me, order_id, actor(who))
        ref = await _ref(svc, me, order_id)
        await answer(
            callback,
            t("driver.arrived", lang, ref=ref),
            reply_markup=kb.undo_button(order_id, lang),
        )
    elif callback_data.op == "pickup":
        await svc.stops.picked_up(me, order_id, actor(who))
        await answer(
            callback,
            t("driver.picked_up", lang, ref=await _ref(svc, me, order_id)),
            reply_markup=kb.undo_button(order_id, lang),
        )
    elif callback_data.op == "deliver":
        needs = await svc.stops.needs(me, order_id)
        if needs is ProofKind.NONE:
            await _delivered(callback.bot, callback.message.chat.id, svc, who, order_id, lang)  # type: ignore[union-attr,arg-type]
            return
        step = {
            ProofKind.PHOTO: Proof.photo,
            ProofKind.SIGNATURE: Proof.name,
            ProofKind.PIN: Proof.pin,
        }
        prompt = {
            ProofKind.PHOTO: "driver.send_photo",
            ProofKind.SIGNATURE: "driver.send_name",
            ProofKind.PIN: "driver.send_pin",
        }
        await state.set_state(step[needs])
        await state.update_data(order=order_id)
        await answer(callback, t(prompt[needs], lang, ref=await _ref(svc, me, order_id)))
    elif callback_data.op == "fail":
        await svc.stops.needs(me, order_id)  # refuses someone else's stop
        await answer(
            callback,
            t("driver.fail_reason", lang, ref=await _ref(svc, me, order_id)),
            reply_markup=kb.fail_reasons(order_id, lang),
        )
    elif callback_data.op == "undo":
        status = await svc.stops.undo(me, order_id, actor(who), within=svc.undo_window)
        await answer(
            callback,
            t(
                "driver.undone",
                lang,
                ref=await _ref(svc, me, order_id),
                status=t(f"status.{status}", lang),
            ),
        )


async def _ref(svc: Services, driver: int, order_id: int) -> str:
    return await stops.own_ref(svc.db, driver, order_id)


async def _delivered(
    bot: Bot, chat_id: int, svc: Services, who: Identity, order_id: int, lang: str
) -> None:
    ref = await _ref(svc, driver_id(who), order_id)
    await svc.stops.deliver(driver_id(who), order_id, actor(who))
    nxt = await _next_text(svc, who, lang)
    await bot.send_message(
        chat_id,
        t("driver.delivered", lang, ref=ref, next=nxt),
        reply_markup=kb.undo_button(order_id, lang),
    )


@router.message(Proof.photo, F.photo)
async def msg_proof_photo(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    order_id = (await state.get_data())["order"]
    photo = message.photo[-1]  # type: ignore[index]
    await _save_photo(bot, svc, who, order_id, photo.file_id, photo.file_size)
    await state.clear()
    await _delivered(bot, message.chat.id, svc, who, order_id, lang)


@router.message(Proof.photo, F.document)
async def msg_proof_document(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    """A photo sent as a file: accepted when it really is an image."""
    order_id = (await state.get_data())["order"]
    document = message.document
    assert document is not None
    if not (document.mime_type or "").startswith("image/"):
        raise DomainError("proof.not_image")
    await _save_photo(bot, svc, who, order_id, document.file_id, document.file_size)
    await state.clear()
    await _delivered(bot, message.chat.id, svc, who, order_id, lang)


async def _save_photo(
    bot: Bot, svc: Services, who: Identity, order_id: int, file_id: str, size: int | None
) -> None:
    limit = int(svc.settings.telegram.max_photo_mb * 1_000_000)
    if size is not None and size > limit:
        raise DomainError("proof.too_large", mb=round(limit / 1_000_000))
    try:
        file = await bot.get_file(file_id)
        assert file.file_path is not None
        data = await bot.download_file(file.file_path)
    except Exception:
        log.warning("could not fetch proof photo %s", file_id, exc_info=True)
        raise DomainError("proof.download_failed") from None
    assert data is not None
    await proofs.save_photo(
        svc.db,
        svc.settings.app.data_dir,
        order_id,
        driver_id(who),
        data.read(),
        max_bytes=limit,
        channel_file_id=file_id,
    )


@router.message(Proof.photo)
async def msg_proof_other(
    message: Message, svc: Services, lang: str, state: FSMContext, who: Identity
) -> None:
    order_id = (await state.get_data())["order"]
    await message.answer(
        t("driver.photo_expected", lang, ref=await _ref(svc, driver_id(who), order_id))
    )


@router.message(Proof.name, F.text)
async def msg_proof_name(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    order_id = (await state.get_data())["order"]
    await proofs.save_recipient(svc.db, order_id, driver_id(who), message.text or "")
    await state.clear()
    await _delivered(bot, message.chat.id, svc, who, order_id, lang)


@router.message(Proof.pin, F.text)
async def msg_proof_pin(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    order_id = (await state.get_data())["order"]
    await proofs.check_pin(svc.db, order_id, driver_id(who), message.text or "")
    await state.clear()
    await _delivered(bot, message.chat.id, svc, who, order_id, lang)


@router.callback_query(FailCb.filter())
async def cb_fail(
    callback: CallbackQuery,
    callback_data: FailCb,
    svc: Services,
    who: Identity,
    lang: str,
    state: FSMContext,
) -> None:
    await callback.answer()
    order_id = callback_data.order
    ref = await _ref(svc, driver_id(who), order_id)
    if callback_data.reason == "other":
        await state.set_state(FailOther.text)
        await state.update_data(order=order_id)
        await answer(callback, t("driver.fail_other", lang, ref=ref))
        return
    assert callback.bot is not None and callback.message is not None
    await _failed(
        callback.bot, callback.message.chat.id, svc, who, order_id, callback_data.reason, lang
    )


@router.message(FailOther.text, F.text)
async def msg_fail_other(
    message: Message, bot: Bot, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    order_id = (await state.get_data())["order"]
    text = " ".join((message.text or "").split())
    if not 2 <= len(text) <= 300:
        await message.answer(
            t("driver.fail_other", lang, ref=await _ref(svc, driver_id(who), order_id))
        )
        return
    await state.clear()
    await _failed(bot, message.chat.id, svc, who, order_id, text, lang)


async def _failed(
    bot: Bot, chat_id: int, svc: Services, who: Identity, order_id: int, reason: str, lang: str
) -> None:
    ref = await _ref(svc, driver_id(who), order_id)
    await svc.stops.fail(driver_id(who), order_id, reason, actor(who))
    nxt = await _next_text(svc, who, lang)
    if reason in stops.FAIL_REASONS[:-1]:
        text = t("driver.failed", lang, ref=ref, reason=t(f"reason.{reason}", lang), next=nxt)
    else:  # her own words: she is told who reads them
        text = t("driver.failed_note", lang, ref=ref, next=nxt)
    await bot.send_message(chat_id, text, reply_markup=kb.undo_button(order_id, lang))
