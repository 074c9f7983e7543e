"""/neworder: a guided conversation that ends in core.services.orders.create_order.

name → phone (/skip) → address (text, geocoded; or a pin) → [pick one of ≤3] → window (/skip)
→ weight (/skip) → notes (/skip) → confirm, start over, or cancel. Every answer is checked as it
comes, so a mistake is corrected on the spot and nothing is saved until "Create"."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.telegram import keyboards as kb
from bot.telegram.keyboards import DraftCb
from bot.telegram.replies import bot_username, window, zone
from bot.telegram.routes import Routes
from bot.telegram.states import NewOrder
from core.errors import DomainError
from core.lifecycle import Actor
from core.services import invites, orders
from core.services.geocoding import parse_pin
from core.services.hub import Services
from core.services.members import Identity
from core.services.messages import tracking_link
from core.services.stops import ref_of
from core.texts import t
from core.validation import describe

router = Routes("neworder")
SKIP = "/skip"
MAX_TEXT = {"name": 200, "notes": 2000}


@router.message(Command("neworder"))
async def cmd_neworder(message: Message, state: FSMContext, lang: str) -> None:
    await state.clear()
    await state.set_state(NewOrder.name)
    await message.answer(t("neworder.name", lang))


def _text(message: Message, limit: int) -> str:
    text = " ".join((message.text or "").split())
    if not text:
        raise DomainError("neworder.bad_text")
    if len(text) > limit:
        raise DomainError("neworder.too_long", limit=limit)
    return text


@router.message(NewOrder.name)
async def msg_name(message: Message, state: FSMContext, lang: str) -> None:
    await state.update_data(customer_name=_text(message, MAX_TEXT["name"]))
    await state.set_state(NewOrder.phone)
    await message.answer(t("neworder.phone", lang))


@router.message(NewOrder.phone)
async def msg_phone(message: Message, state: FSMContext, svc: Services, lang: str) -> None:
    text = _text(message, 40)
    phone = None if text == SKIP else orders.normalize_phone(text, svc.settings.app.phone_region)
    await state.update_data(customer_phone=phone)
    await state.set_state(NewOrder.address)
    await message.answer(t("neworder.address", lang))


@router.message(NewOrder.address, F.location)
async def msg_address_pin(message: Message, state: FSMContext, svc: Services, lang: str) -> None:
    location = message.location
    assert location is not None
    await _pin(message, state, svc, location.latitude, location.longitude, lang)


async def _pin(
    message: Message, state: FSMContext, svc: Services, lat: float, lon: float, lang: str
) -> None:
    """A dropped (or typed) pin: the address there, else "📍 Dropped pin"."""
    label = await svc.geocoder.name_point(lat, lon) or t("neworder.address_pin", lang)
    await _place(message, state, svc, label, lat, lon, lang)


@router.message(NewOrder.address)
async def msg_address_text(message: Message, state: FSMContext, svc: Services, lang: str) -> None:
    text = _text(message, 500)
    if point := parse_pin(text):
        await _pin(message, state, svc, *point, lang)
        return
    places = await svc.geocoder.search(text)
    if not places:
        await message.answer(t("neworder.no_match", lang, text=text))
        return
    if len(places) == 1:
        place = places[0]
        await _place(message, state, svc, place.label, place.lat, place.lon, lang, typed=text)
        return
    found = [{"label": p.label, "lat": p.lat, "lon": p.lon} for p in places[:3]]
    await state.update_data(places=found, typed=text)
    await state.set_state(NewOrder.choose)
    await message.answer(
        t("neworder.choose", lang), reply_markup=kb.places([p.label for p in places[:3]])
    )


@router.callback_query(NewOrder.choose, DraftCb.filter(F.op == "place"))
async def cb_place(
    callback: CallbackQuery, callback_data: DraftCb, state: FSMContext, svc: Services, lang: str
) -> None:
    data = await state.get_data()
    place = data["places"][min(callback_data.index, len(data["places"]) - 1)]
    await callback.answer()
    assert isinstance(callback.message, Message)
    await _place(callback.message, state, svc, place["label"], place["lat"], place["lon"], lang)


async def _place(
    message: Message,
    state: FSMContext,
    svc: Services,
    label: str,
    lat: float,
    lon: float,
    lang: str,
    typed: str | None = None,
) -> None:
    await state.update_data(address=typed or label, lat=lat, lon=lon, places=None)
    await state.set_state(NewOrder.window)
    example = orders.window_example(svc.clock(), zone(svc))
    await message.answer(t("neworder.window", lang, example=example))


@router.message(NewOrder.window)
async def msg_window(message: Message, state: FSMContext, svc: Services, lang: str) -> None:
    text = _text(message, 60)
    if text == SKIP:
        await state.update_data(window=None)
    else:
        chosen = orders.parse_window_text(text, svc.clock(), zone(svc))
        await state.update_data(window=[chosen.starts_at.isoformat(), chosen.ends_at.isoformat()])
    await state.set_state(NewOrder.size)
    await message.answer(t("neworder.size", lang))


@router.message(NewOrder.size)
async def msg_size(message: Message, state: FSMContext, lang: str) -> None:
    text = _text(message, 20)
    weight = None
    if text != SKIP:
        try:
            weight = float(text.lower().removesuffix("kg").strip())
        except ValueError:
            raise DomainError("neworder.bad_size", text=text) from None
        if not 0 <= weight <= 10_000:
            raise DomainError("neworder.bad_size", text=text)
    await state.update_data(weight_kg=weight)
    await state.set_state(NewOrder.notes)
    await message.answer(t("neworder.notes", lang))


@router.message(NewOrder.notes)
async def msg_notes(message: Message, state: FSMContext, svc: Services, lang: str) -> None:
    text = _text(message, MAX_TEXT["notes"])
    await state.update_data(notes="" if text == SKIP else text)
    await state.set_state(NewOrder.confirm)
    data = await state.get_data()
    draft = _draft(data)  # checks everything together before asking to confirm
    summary = t(
        "neworder.summary",
        lang,
        name=draft.customer_name,
        phone=f" · {draft.customer_phone}" if draft.customer_phone else "",
        address=draft.address,
        window=window(svc, draft.windows[0].starts_at, draft.windows[0].ends_at)
        if draft.windows
        else "",
        size=f"\n{draft.weight_kg} kg" if draft.weight_kg is not None else "",
        notes=f"\n{draft.notes}" if draft.notes else "",
    )
    await message.answer(summary, reply_markup=kb.draft_confirm(lang))


def _draft(data: dict[str, Any]) -> orders.OrderDraft:
    from datetime import datetime

    from pydantic import ValidationError

    from core.lifecycle import Window

    windows: tuple[Window, ...] = ()
    if data.get("window"):
        start, end = (datetime.fromisoformat(v) for v in data["window"])
        windows = (Window(start, end),)
    try:
        return orders.OrderDraft(
            customer_name=data["customer_name"],
            customer_phone=data.get("customer_phone"),
            address=data["address"],
            lat=data.get("lat"),
            lon=data.get("lon"),
            windows=windows,
            weight_kg=data.get("weight_kg"),
            notes=data.get("notes", ""),
        )
    except ValidationError as exc:
        raise DomainError("neworder.invalid", problems="; ".join(describe(exc))) from None


@router.callback_query(NewOrder.confirm, DraftCb.filter(F.op == "create"))
async def cb_create(
    callback: CallbackQuery, bot: Bot, state: FSMContext, svc: Services, who: Identity, lang: str
) -> None:
    assert who.member_id is not None
    draft = _draft(await state.get_data())
    order = await orders.create_order(
        svc.db, draft, Actor.member(who.member_id), source="telegram", rules=svc.settings.orders
    )
    await state.clear()
    await callback.answer()
    subscribe = invites.deep_link(await bot_username(bot, svc) or "", order.tracking_token)
    text = t(
        "neworder.created",
        lang,
        ref=ref_of(order),
        link=tracking_link(svc.settings, order.tracking_token),
        subscribe=subscribe,
    )
    chat = callback.message.chat.id  # type: ignore[union-attr]
    await bot.send_photo(
        chat, BufferedInputFile(invites.qr_png(subscribe), f"order-{order.id}.png"), caption=text
    )


@router.callback_query(NewOrder.confirm, DraftCb.filter(F.op == "edit"))
async def cb_edit(callback: CallbackQuery, state: FSMContext, lang: str) -> None:
    await state.clear()
    await state.set_state(NewOrder.name)
    await callback.answer()
    await callback.bot.send_message(callback.message.chat.id, t("neworder.name", lang))  # type: ignore[union-attr]


@router.callback_query(DraftCb.filter(F.op == "abort"))
async def cb_abort(callback: CallbackQuery, state: FSMContext, lang: str) -> None:
    await state.clear()
    await callback.answer()
    await callback.bot.send_message(callback.message.chat.id, t("neworder.cancelled", lang))  # type: ignore[union-attr]
