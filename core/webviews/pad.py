"""The signature pad: a signed link for the driver (opened as a Telegram Mini App or in any
browser), what the page shows, and what a submit does — keep the signature, then mark the order
delivered when that was the proof it still needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from sqlmodel import select

from core.drivers import proofs, signatures, stops
from core.models import Driver, Order, OrderStatus, Proof, ProofKind
from core.notify import outbox
from core.notify.rules import Notice
from core.orders.lifecycle import Actor, TransitionRefused
from core.webviews import initdata, links
from core.webviews.initdata import InitData

if TYPE_CHECKING:
    from core.bootstrap import Services

PURPOSE = "sign"
PAGE_WORDS = ("title", "hint", "name", "clear", "submit", "done", "offline")
SIGNED_BY_PAD = (ProofKind.SIGNATURE, ProofKind.PHOTO_SIGNATURE)


@dataclass(frozen=True)
class PadView:
    order_id: int
    ref: str
    mini_app: bool  # opened from Telegram: a submit must carry its initData
    delivered: bool


async def link(svc: Services, member_id: int, order_id: int, telegram_user_id: int | None) -> str:
    """A new pad link for this driver and order (a Mini App's when `telegram_user_id`)."""
    ttl = timedelta(minutes=svc.settings.app.sign_link_minutes)
    token = await links.issue(
        svc.db,
        svc.signer.key,
        PURPOSE,
        member_id,
        svc.clock(),
        ttl,
        order_id=order_id,
        telegram_user_id=telegram_user_id,
    )
    return f"{svc.signer.base_url}/sign/{token}"


async def _open(svc: Services, token: str) -> tuple[int, int, int | None, Order]:
    found = await links.check(svc.db, svc.signer.key, token, PURPOSE, svc.clock())
    assert found.order_id is not None
    async with svc.db.reads() as session:
        statement = select(Driver).where(Driver.member_id == found.member_id)
        driver = (await session.exec(statement)).first()
        if driver is None or driver.id is None:
            raise links.BadLink("link.bad")
        order = await stops.own_order(session, driver.id, found.order_id)
    return found.member_id, driver.id, found.telegram_user_id, order


async def view(svc: Services, token: str) -> PadView:
    """What the pad page shows, if the link holds."""
    _, _, telegram_user_id, order = await _open(svc, token)
    assert order.id is not None
    delivered = order.status is OrderStatus.DELIVERED
    return PadView(order.id, stops.ref_of(order), telegram_user_id is not None, delivered)


async def submit(
    svc: Services, token: str, drawing: Any, name: str, key: str, init_data: str
) -> Proof:
    """Keep the signature (once per idempotency `key`) and deliver the order if it waited for it."""
    member_id, driver_id, telegram_user_id, order = await _open(svc, token)
    now = svc.clock()
    checked: InitData | None = None
    if telegram_user_id is not None:
        token_value = svc.settings.telegram.bot_token
        bot_token = token_value.get_secret_value() if token_value else ""
        if not bot_token:  # no key to check against: nothing can be proven
            raise initdata.BadInitData("webapp.bad")
        max_age = timedelta(seconds=svc.settings.telegram.init_data_max_age_s)
        checked = initdata.check(init_data, bot_token, now, max_age)
        if checked.user_id != telegram_user_id:
            raise initdata.BadInitData("webapp.bad")
    assert order.id is not None
    sign = signatures.drawing(drawing)
    try:
        proof, _ = await proofs.save_signature(
            svc.db, svc.files, order.id, driver_id, sign, name, key, init_data=checked, now=now
        )
    except (initdata.InitDataReplayed, sqlalchemy.exc.IntegrityError):
        # the same submit sent twice at once: the other one kept it
        kept = await proofs.by_key(svc.db, order.id, key)
        if kept is None:
            raise
        proof = kept
    if order.proof_required in SIGNED_BY_PAD:
        try:
            await svc.stops.deliver(driver_id, order.id, Actor.member(member_id))
            await _tell_driver(svc, member_id, order, proof)
        except TransitionRefused:
            async with svc.db.reads() as session:  # delivered by the same submit sent twice?
                now_order = await session.get(Order, order.id)
            if now_order is None or now_order.status is not OrderStatus.DELIVERED:
                raise
    return proof


async def _tell_driver(svc: Services, member_id: int, order: Order, proof: Proof) -> None:
    """The driver hears in her chat that the pad delivered the order (once per signature)."""
    params = {"ref": stops.ref_of(order), "name": proof.recipient_name or ""}
    try:
        async with svc.db.transaction() as session:
            notice = Notice(member_id, "driver.signed", params)
            await outbox.add(session, notice, f"signed:{proof.id}", order.id)
    except sqlalchemy.exc.IntegrityError:
        pass  # the same submit, sent twice at once, told her already
