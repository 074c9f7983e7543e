"""The driver's page (a Telegram Mini App, or a signed link in any browser): her open stops in
route order with navigation links, Arrived / Picked up / Delivered / Failed through the same
services as her chat's stop buttons, the proof photo and the signature pad, and her position
from the browser through the same path as a chat location.

A page action done twice (a double tap, a page submitted again) changes nothing the second
time: it answers with the order's state. Delivered is refused while the proof the order needs
is missing, as in chat."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from core.drivers import positions, proofs, shifts, stops
from core.drivers.stops import FAIL_REASONS, StopView
from core.errors import DomainError
from core.models import Driver, Order, OrderStatus, Proof, ProofKind, StopKind
from core.notify.messages import clock, span
from core.orders.lifecycle import Actor, TransitionRefused
from core.texts import t
from core.webviews import initdata, links, pad

if TYPE_CHECKING:
    from core.bootstrap import Services

PURPOSE = "driver"
PAGE_WORDS = (
    "title", "empty", "navigate", "map", "photo", "signature", "signed", "pin",
    "reasons", "other", "send", "cancel", "sharing", "not_sharing", "offline", "busy", "eta",
    "window", "for", "note", "proof_photo", "proof_signature", "proof_pin", "proof_both",
)  # fmt: skip
S = OrderStatus
NEEDS_PHOTO = (ProofKind.PHOTO, ProofKind.PHOTO_SIGNATURE)
CLOSED = (S.DELIVERED, S.FAILED, S.CANCELLED, S.RETURNED, S.RESCHEDULED, S.NEW)
PAST_PICKUP = (S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ARRIVED, *CLOSED)


@dataclass(frozen=True)
class Page:
    """Who a driver's link is for: the member, her driver record, and (a Mini App's link) the
    Telegram user whose initData must come with every action."""

    token: str
    member_id: int
    driver_id: int
    telegram_user_id: int | None

    @property
    def actor(self) -> Actor:
        return Actor.member(self.member_id)


async def link(svc: Services, member_id: int, telegram_user_id: int | None) -> str:
    """A new driver's page link for this member (a Mini App's when `telegram_user_id`)."""
    ttl = timedelta(hours=svc.settings.app.driver_link_hours)
    token = await links.issue(
        svc.db, svc.signer.key, PURPOSE, member_id, svc.clock(), ttl,
        telegram_user_id=telegram_user_id,
    )  # fmt: skip
    return f"{svc.signer.base_url}/driver/{token}"


async def open_page(svc: Services, token: str) -> Page:
    """The page behind `token`, if the link holds and its member still drives."""
    found = await links.check(svc.db, svc.signer.key, token, PURPOSE, svc.clock())
    async with svc.db.reads() as session:
        statement = select(Driver).where(Driver.member_id == found.member_id)
        driver = (await session.exec(statement)).first()
    if driver is None or driver.id is None:
        raise links.BadLink("link.bad")
    return Page(token, found.member_id, driver.id, found.telegram_user_id)


def form_key(svc: Services, token: str) -> str:
    """The page's anti-forgery key: every action must send it back (another site cannot read
    it, nor send it as a header without our consent)."""
    message = f"driver-page:{token}".encode()
    return hmac.new(svc.signer.key, message, hashlib.sha256).hexdigest()


def check_action(svc: Services, page: Page, key: str, init_data: str) -> None:
    """An action must carry the page's key and, in a Mini App, initData signed for her."""
    if not hmac.compare_digest(form_key(svc, page.token), key):
        raise links.BadLink("webapp.bad")
    if page.telegram_user_id is None:
        return
    secret = svc.settings.telegram.bot_token
    bot_token = secret.get_secret_value() if secret else ""
    if not bot_token:
        raise initdata.BadInitData("webapp.bad")
    max_age = timedelta(seconds=svc.settings.telegram.init_data_max_age_s)
    checked = initdata.check(init_data, bot_token, svc.clock(), max_age)
    if checked.user_id != page.telegram_user_id:
        raise initdata.BadInitData("webapp.bad")


# --- what the page shows ---


async def stop_rows(svc: Services, page: Page, lang: str) -> list[dict[str, Any]]:
    """Her open stops in route order (the chat's /route), ready for the page."""
    route = await stops.route_of(svc.db, page.driver_id)
    ids = {stop.order_id for stop in route}
    kept: dict[int, set[str]] = {order_id: set() for order_id in ids}
    if ids:
        async with svc.db.reads() as session:
            for proof in await session.exec(select(Proof).where(col(Proof.order_id).in_(ids))):
                if proof.kind is ProofKind.PHOTO:
                    kept[proof.order_id].add("photo")
                if proof.signature_sha256:
                    kept[proof.order_id].add("signature")
    zone = ZoneInfo(svc.settings.app.timezone)
    return [_row(stop, kept[stop.order_id], zone, lang) for stop in route]


def _row(stop: StopView, kept: set[str], zone: ZoneInfo, lang: str) -> dict[str, Any]:
    here = stop.lat is not None and stop.lon is not None
    return {
        "order": stop.order_id,
        "position": stop.position,
        "ref": stop.ref,
        "pickup": stop.kind is StopKind.PICKUP,
        "status": stop.status.value,
        "status_text": t(f"status.{stop.status}", lang),
        "address": stop.address,
        "eta": clock(stop.eta, zone),
        "window": span(*stop.window, zone, lang) if stop.window else "",
        "customer": stop.customer,
        "notes": stop.notes,
        "proof": stop.proof.value,
        "photo": "photo" in kept,
        "signature": "signature" in kept,
        "maps": (
            f"https://www.google.com/maps/dir/?api=1&destination={stop.lat},{stop.lon}"
            if here
            else ""
        ),
        "geo": f"geo:{stop.lat},{stop.lon}?q={stop.lat},{stop.lon}" if here else "",
    }


# --- what she does ---


async def _order(svc: Services, page: Page, order_id: int) -> Order:
    async with svc.db.reads() as session:
        return await stops.own_order(session, page.driver_id, order_id)


def _already(order: Order, lang: str) -> str:
    return t(
        "driverpage.already",
        lang,
        ref=stops.ref_of(order),
        status=t(f"status.{order.status}", lang),
    )


async def act(
    svc: Services, page: Page, order_id: int, op: str, lang: str, *, reason: str = "",
    pin: str = "",
) -> str:  # fmt: skip
    """Do `op` at her stop through the chat's services; what to tell her."""
    order = await _order(svc, page, order_id)
    ref = stops.ref_of(order)
    if op == "fail":
        reason = _reason(reason, ref)
    if op == "deliver" and order.status not in CLOSED:
        await _check_proof(svc, page, order, pin)
    done = {"pickup": PAST_PICKUP, "arrive": (S.ARRIVED, *CLOSED)}.get(op, CLOSED)
    if order.status in done:
        return _already(order, lang)
    try:
        if op == "pickup":
            await svc.stops.picked_up(page.driver_id, order_id, page.actor)
            return t("driver.picked_up", lang, ref=ref)
        if op == "arrive":
            await svc.stops.arrive(page.driver_id, order_id, page.actor)
            return t("driver.arrived", lang, ref=ref)
        if op == "deliver":
            await svc.stops.deliver(page.driver_id, order_id, page.actor)
            return t("driver.delivered", lang, ref=ref, next=await _next(svc, page, lang))
        if op == "fail":
            await svc.stops.fail(page.driver_id, order_id, reason, page.actor)
            nxt = await _next(svc, page, lang)
            if reason in FAIL_REASONS[:-1]:
                said = t(f"reason.{reason}", lang)
                return t("driver.failed", lang, ref=ref, reason=said, next=nxt)
            return t("driver.failed_note", lang, ref=ref, next=nxt)
    except TransitionRefused:
        now = await _order(svc, page, order_id)  # the same tap, sent twice at once?
        if now.status in done:
            return _already(now, lang)
        raise
    raise DomainError("denied.button")


def _reason(reason: str, ref: str) -> str:
    """A reason code the chat offers, or her own words (2 to 300 characters)."""
    if reason in FAIL_REASONS[:-1]:
        return reason
    words = " ".join(reason.split())
    if not 2 <= len(words) <= 300:
        raise DomainError("driver.fail_other", ref=ref)
    return words


async def _check_proof(svc: Services, page: Page, order: Order, pin: str) -> None:
    """Refuse Delivered while the order's proof is missing (a PIN given is checked and kept)."""
    assert order.id is not None
    needs, ref = order.proof_required, stops.ref_of(order)
    if needs is ProofKind.PIN:
        await proofs.check_pin(svc.db, order.id, page.driver_id, pin)
        return
    async with svc.db.reads() as session:
        photo = await proofs.latest_photo(session, order.id)
        drawn = await proofs.latest_drawn(session, order.id)
    if needs in NEEDS_PHOTO and photo is None:
        raise DomainError("driverpage.photo_needed", ref=ref)
    if needs in pad.SIGNED_BY_PAD and drawn is None:
        raise DomainError("driverpage.signature_needed", ref=ref)


async def _next(svc: Services, page: Page, lang: str) -> str:
    route = await stops.route_of(svc.db, page.driver_id)
    if not route:
        return ""
    return t("driver.next_stop", lang, ref=route[0].ref, address=route[0].address)


async def photo(svc: Services, page: Page, order_id: int, data: bytes, lang: str) -> str:
    """Keep the proof photo, checked as the chat's photos are (size, a real image)."""
    order = await _order(svc, page, order_id)
    if order.status in CLOSED:
        raise DomainError("sign.closed", ref=stops.ref_of(order))
    limit = int(svc.settings.telegram.max_photo_mb * 1_000_000)
    proof = await proofs.save_photo(
        svc.db, svc.files, order_id, page.driver_id, data, max_bytes=limit
    )
    if await proofs.waiting(svc.files, proof):  # the file store is out: kept, filed later
        return t("driver.proof_spooled", lang, ref=stops.ref_of(order))
    return t("driverpage.photo_saved", lang, ref=stops.ref_of(order))


async def sign_link(svc: Services, page: Page, order_id: int) -> str:
    """The signature pad for her stop (once its photo is kept, when it needs both). A plain
    link bound to her and the order: the page's own initData was checked to get here."""
    order = await _order(svc, page, order_id)
    ref = stops.ref_of(order)
    if order.status in CLOSED:
        raise DomainError("sign.closed", ref=ref)
    if order.proof_required not in pad.SIGNED_BY_PAD:
        raise DomainError("driverpage.no_signature", ref=ref)
    if order.proof_required is ProofKind.PHOTO_SIGNATURE:
        async with svc.db.reads() as session:
            if await proofs.latest_photo(session, order_id) is None:
                raise DomainError("driverpage.photo_needed", ref=ref)
    return await pad.link(svc, page.member_id, order_id, None)


async def position(svc: Services, page: Page, values: dict[str, Any], first: bool) -> None:
    """Her position from the browser, kept as a chat location is: her latest position, ETAs,
    "nearby" notices; the first one of a page on shift can start her route."""
    fix = positions.Fix(
        lat=_number(values.get("lat"), -90, 90),
        lon=_number(values.get("lon"), -180, 180),
        at=svc.clock(),
        live=True,
        accuracy_m=_optional(values.get("accuracy"), 0, 100_000),
        heading=_heading(values.get("heading")),
        speed_mps=_optional(values.get("speed"), 0, 200),
    )
    await svc.positions.ping(page.driver_id, fix)
    if first and await shifts.on_shift(svc.db, page.driver_id):
        await svc.stops.start_next(page.driver_id, page.actor)
        await svc.autopilot.driver_ready(page.driver_id)


def _number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DomainError("driverpage.bad_position")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise DomainError("driverpage.bad_position")
    return number


def _optional(value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    try:
        return _number(value, low, high)
    except DomainError:
        return None  # a browser's odd extra reading: the position itself still counts


def _heading(value: Any) -> int | None:
    number = _optional(value, 0, 360)
    return None if number is None else int(number) % 360
