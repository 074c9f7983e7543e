"""Customers: "where is my order?", a new slot after a failed attempt, instructions, ratings."""

from __future__ import annotations

from aiogram import F
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.telegram.filters import CUSTOMER
from bot.telegram.keyboards import Act, RateCb, SlotCb
from bot.telegram.replies import answer, new_slot_buttons, status_line, window
from bot.telegram.routes import Routes
from bot.telegram.states import Instructions
from core.lifecycle import Actor
from core.services import customers
from core.services.hub import Services
from core.services.members import Identity
from core.texts import t

router = Routes("customer")
router.guard(CUSTOMER, ("message", "callback_query"))


def member(who: Identity) -> int:
    assert who.member_id is not None
    return who.member_id


@router.message(Instructions.text, F.text)
async def msg_instructions(
    message: Message, svc: Services, who: Identity, lang: str, state: FSMContext
) -> None:
    order_id = (await state.get_data())["order"]
    await customers.leave_instructions(svc.db, member(who), order_id, message.text or "")
    await state.clear()
    await message.answer(t("customer.instructions_saved", lang))


@router.message(F.text.func(customers.asks_where))
async def msg_where(message: Message, svc: Services, who: Identity, lang: str) -> None:
    views = await customers.orders_of(svc.db, member(who))
    if not views:
        await message.answer(t("customer.no_orders", lang))
        return
    await message.answer("\n\n".join(status_line(svc, view, lang) for view in views))


@router.callback_query(RateCb.filter())
async def cb_rate(
    callback: CallbackQuery, callback_data: RateCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    await customers.rate(svc.db, member(who), callback_data.order, callback_data.stars)
    await answer(callback, t("customer.rated", lang, stars=callback_data.stars))


@router.callback_query(Act.filter(F.name == "customer.pick_new_slot"))
async def cb_pick_slot(
    callback: CallbackQuery, callback_data: Act, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    views = {v.order_id: v for v in await customers.orders_of(svc.db, member(who))}
    if callback_data.id not in views:
        await answer(callback, t("customer.not_yours", lang, order=callback_data.id))
        return
    await answer(
        callback,
        t("customer.pick_slot", lang, ref=views[callback_data.id].ref),
        reply_markup=new_slot_buttons(svc, callback_data.id, "c", lang),
    )


@router.callback_query(SlotCb.filter(F.by == "c"))
async def cb_slot(
    callback: CallbackQuery, callback_data: SlotCb, svc: Services, who: Identity, lang: str
) -> None:
    await callback.answer()
    chosen = callback_data.window()
    await customers.reschedule(
        svc.db,
        member(who),
        callback_data.order,
        chosen,
        Actor.member(member(who)),
        svc.settings.orders,
    )
    views = {v.order_id: v for v in await customers.orders_of(svc.db, member(who))}
    ref = views[callback_data.order].ref if callback_data.order in views else ""
    await answer(
        callback,
        t(
            "customer.rescheduled",
            lang,
            ref=ref,
            window=window(svc, chosen.starts_at, chosen.ends_at, lang),
        ),
    )


@router.callback_query(Act.filter(F.name == "customer.leave_instructions"))
async def cb_instructions(
    callback: CallbackQuery, callback_data: Act, state: FSMContext, lang: str
) -> None:
    await callback.answer()
    await state.set_state(Instructions.text)
    await state.update_data(order=callback_data.id)
    await answer(callback, t("customer.instructions_prompt", lang))
