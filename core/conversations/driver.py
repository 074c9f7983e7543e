"""Drivers: /shift, live location, /route, and the stop buttons with their proofs and reasons."""

from __future__ import annotations

import logging

from core.conversations import buttons
from core.conversations.engine import Flow
from core.conversations.events import Command, Event, Location, Press, Text, Upload
from core.conversations.replies import Button, Choices, Link, Reply
from core.conversations.turn import Turn
from core.conversations.wording import when, window
from core.errors import DomainError
from core.models import OrderStatus, ProofKind, Role, StopKind
from core.services import loading, proofs, shifts, stops, tracking
from core.services.stops import FAIL_REASONS, StopView
from core.texts import t

log = logging.getLogger(__name__)
ROUTE_MESSAGES = 10  # stops sent as their own message with buttons; the rest are listed
PROOF_STEPS = {
    ProofKind.PHOTO: ("proof.photo", "driver.send_photo"),
    ProofKind.SIGNATURE: ("proof.name", "driver.send_name"),
    ProofKind.PIN: ("proof.pin", "driver.send_pin"),
}
FAIL_OTHER = "fail.other"


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Command):
        if event.name == "shift":
            await _shift(turn)
        elif event.name == "route":
            await _route(turn)
        else:
            return False
        return True
    if isinstance(event, Location):
        await _location(turn, event)
        return True
    if isinstance(event, Press):
        return await _press(turn, buttons.parse(event.data))
    if isinstance(event, Upload) and turn.at("proof.photo"):
        await _photo(turn, event)
        return True
    if isinstance(event, Text):
        return await _text(turn, event.text)
    return False


# --- shift and location ---


async def _shift(turn: Turn) -> None:
    svc, lang = turn.svc, turn.lang
    if await shifts.on_shift(svc.db, turn.driver_id):
        end = Button(t("shift.end_button", lang), buttons.ShiftOp("end").pack())
        turn.say(t("shift.ask_end", lang), buttons=(end,))
        return
    await shifts.start_shift(svc.db, turn.driver_id, now=svc.clock())
    turn.say(t("shift.started", lang), ask_location=True)
    await svc.autopilot.driver_ready(turn.driver_id)  # waiting orders; off if she shares already


async def _end_shift(turn: Turn) -> None:
    svc, lang = turn.svc, turn.lang
    result = await shifts.end_shift(
        svc.db,
        turn.driver_id,
        turn.actor,
        max_attempts=svc.settings.orders.max_attempts,
        now=svc.clock(),
    )
    if not result.ended:
        turn.say(t("shift.on_board", lang, refs=", ".join(result.on_board)))
        return
    left = t("shift.left", lang, count=len(result.returned)) if result.returned else ""
    turn.say(t("shift.ended", lang, left=left), close_keyboard=True)


async def _location(turn: Turn, event: Location) -> None:
    svc, lang = turn.svc, turn.lang
    at = event.at or svc.clock()
    if event.ended:  # the final edit: she stopped sharing
        await tracking.stop_sharing(svc.db, turn.driver_id, at)
        turn.say(t("location.stopped", lang))
        return
    fix = tracking.Fix(
        lat=event.lat,
        lon=event.lon,
        at=at,
        live_until=event.live_until if event.live else None,
        live=event.live,
        accuracy_m=event.accuracy,
        heading=event.heading,
    )
    await svc.tracker.ping(turn.driver_id, fix)
    if event.update:
        return
    if not await shifts.on_shift(svc.db, turn.driver_id):
        turn.say(t("shift.not_started", lang))
        return
    if event.live:
        turn.say(
            t("location.live_started", lang, until=when(turn, event.live_until)),
            close_keyboard=True,
        )
        await svc.stops.start_next(turn.driver_id, turn.actor)
        await svc.autopilot.driver_ready(turn.driver_id)  # she may take waiting orders now
    else:
        turn.say(t("location.static", lang))


# --- the route and its stops ---


async def _route(turn: Turn) -> None:
    lang = turn.lang
    route = await stops.route_of(turn.svc.db, turn.driver_id)
    if not route:
        turn.say(t("route.empty", lang))
        return
    lines = [t("route.header", lang, count=len(route))]
    lines += [stop_text(turn, stop) for stop in route[ROUTE_MESSAGES:]]
    row = [Button(t("route.start_button", lang), buttons.RouteOp("start").pack())]
    if any(s.status is OrderStatus.ASSIGNED for s in route):
        row.append(Button(t("route.loaded_button", lang), buttons.RouteOp("loaded").pack()))
    turn.say("\n\n".join(lines), buttons=tuple(row))
    for stop in route[:ROUTE_MESSAGES]:
        turn.replies.append(stop_reply(turn, stop))


def stop_reply(turn: Turn, stop: StopView, text: str | None = None) -> Reply:
    lang, order = turn.lang, stop.order_id
    link = None
    if stop.lat is not None and stop.lon is not None:
        url = f"https://www.google.com/maps/dir/?api=1&destination={stop.lat},{stop.lon}"
        link = Link(t("button.navigate", lang), url)
    if stop.kind is StopKind.PICKUP:
        row = (Button(t("button.picked_up", lang), buttons.StopOp("pickup", order).pack()),)
    else:
        row = tuple(
            Button(t(f"button.{label}", lang), buttons.StopOp(op, order).pack())
            for op, label in (("arrive", "arrived"), ("deliver", "delivered"), ("fail", "failed"))
        )
    return Reply(text or stop_text(turn, stop), buttons=row, link=link)


def stop_text(turn: Turn, stop: StopView) -> str:
    lang = turn.lang
    window_text = t("route.window", lang, window=window(turn, *stop.window)) if stop.window else ""
    if stop.kind is StopKind.PICKUP:
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
        eta=t("route.eta", lang, eta=when(turn, stop.eta)) if stop.eta else "",
        window=window_text,
        customer=stop.customer,
        notes=t("route.notes", lang, notes=stop.notes) if stop.notes else "",
    )


async def _load(turn: Turn) -> None:
    """She has loaded her route's parcels: from now on only she delivers them."""
    svc, lang = turn.svc, turn.lang
    loaded = await loading.load_route(svc.db, turn.driver_id, turn.actor, now=svc.clock())
    turn.say(t("route.loaded", lang, count=len(loaded)) if loaded else t("route.loaded_none", lang))


async def _start_route(turn: Turn) -> None:
    """ "Start route": her parcels are on board and her first waiting stop goes out for
    delivery (the customer is told)."""
    svc, lang, me = turn.svc, turn.lang, turn.driver_id
    await loading.load_route(svc.db, me, turn.actor, now=svc.clock())
    route = await stops.route_of(svc.db, me)
    if any(stop.status in stops.MOVING for stop in route):
        turn.say(t("route.under_way", lang))
        return
    started = await svc.stops.start_next(me, turn.actor)
    if started is None:
        turn.say(t("route.nothing_to_start", lang))
        return
    stop = await stops.stop_of(svc.db, me, started)
    turn.replies.append(
        stop_reply(turn, stop, t("route.started", lang, ref=stop.ref, address=stop.address))
    )


# --- buttons ---


async def _press(turn: Turn, data: buttons.Data | None) -> bool:
    if isinstance(data, buttons.ShiftOp) and data.op == "end":
        await _end_shift(turn)
    elif isinstance(data, buttons.RouteOp) and data.op in ("loaded", "start"):
        await (_load(turn) if data.op == "loaded" else _start_route(turn))
    elif isinstance(data, buttons.Act) and data.name == "driver.open_order":
        stop = await stops.stop_of(turn.svc.db, turn.driver_id, data.id)
        turn.replies.append(stop_reply(turn, stop))
    elif isinstance(data, buttons.StopOp):
        return await _stop_op(turn, data.op, data.order)
    elif isinstance(data, buttons.Fail):
        await _fail_reason(turn, data.order, data.reason)
    else:
        return False
    return True


def undo(turn: Turn, order_id: int) -> tuple[Button, ...]:
    return (Button(t("button.undo", turn.lang), buttons.StopOp("undo", order_id).pack()),)


async def _stop_op(turn: Turn, op: str, order_id: int) -> bool:
    svc, lang, me = turn.svc, turn.lang, turn.driver_id
    if op == "arrive":
        await svc.stops.arrive(me, order_id, turn.actor)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.arrived", lang, ref=ref), buttons=undo(turn, order_id))
    elif op == "pickup":
        await svc.stops.picked_up(me, order_id, turn.actor)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.picked_up", lang, ref=ref), buttons=undo(turn, order_id))
    elif op == "deliver":
        needs = await svc.stops.needs(me, order_id)
        if needs is ProofKind.NONE:
            await _delivered(turn, order_id)
            return True
        step, prompt = PROOF_STEPS[needs]
        await turn.goto(step, order=order_id)
        turn.say(t(prompt, lang, ref=await _ref(turn, order_id)))
    elif op == "fail":
        await svc.stops.needs(me, order_id)  # refuses someone else's stop
        reasons = tuple(
            Button(t(f"reason.{r}", lang), buttons.Fail(order_id, r).pack()) for r in FAIL_REASONS
        )
        text = t("driver.fail_reason", lang, ref=await _ref(turn, order_id))
        turn.say(text, choices=Choices(reasons))
    elif op == "undo":
        status = await svc.stops.undo(me, order_id, turn.actor, within=svc.undo_window)
        ref = await _ref(turn, order_id)
        turn.say(t("driver.undone", lang, ref=ref, status=t(f"status.{status}", lang)))
    else:
        return False
    return True


async def _ref(turn: Turn, order_id: int) -> str:
    return await stops.own_ref(turn.svc.db, turn.driver_id, order_id)


async def _next_text(turn: Turn) -> str:
    route = await stops.route_of(turn.svc.db, turn.driver_id)
    if not route:
        return ""
    return t("driver.next_stop", turn.lang, ref=route[0].ref, address=route[0].address)


async def _delivered(turn: Turn, order_id: int) -> None:
    ref = await _ref(turn, order_id)
    await turn.svc.stops.deliver(turn.driver_id, order_id, turn.actor)
    nxt = await _next_text(turn)
    turn.say(t("driver.delivered", turn.lang, ref=ref, next=nxt), buttons=undo(turn, order_id))


# --- proofs and reasons in her own words ---


async def _photo(turn: Turn, upload: Upload) -> None:
    """The proof photo (a photo, or an image sent as a file)."""
    order_id = turn.data["order"]
    if upload.kind == "document" and not (upload.mime_type or "").startswith("image/"):
        raise DomainError("proof.not_image")
    svc = turn.svc
    limit = int(svc.settings.telegram.max_photo_mb * 1_000_000)
    if upload.size is not None and upload.size > limit:
        raise DomainError("proof.too_large", mb=round(limit / 1_000_000))
    try:
        content = await upload.fetch()
    except Exception:
        log.warning("could not fetch proof photo %s", upload.file_ref, exc_info=True)
        raise DomainError("proof.download_failed") from None
    await proofs.save_photo(
        svc.db,
        svc.settings.app.data_dir,
        order_id,
        turn.driver_id,
        content,
        max_bytes=limit,
        channel_file_id=upload.file_ref,
    )
    await turn.finish()
    await _delivered(turn, order_id)


async def _text(turn: Turn, text: str) -> bool:
    if turn.at("proof.photo"):
        ref = await _ref(turn, turn.data["order"])
        turn.say(t("driver.photo_expected", turn.lang, ref=ref))
    elif turn.at("proof.name"):
        order_id = turn.data["order"]
        await proofs.save_recipient(turn.svc.db, order_id, turn.driver_id, text)
        await turn.finish()
        await _delivered(turn, order_id)
    elif turn.at("proof.pin"):
        order_id = turn.data["order"]
        await proofs.check_pin(turn.svc.db, order_id, turn.driver_id, text)
        await turn.finish()
        await _delivered(turn, order_id)
    elif turn.at(FAIL_OTHER):
        order_id = turn.data["order"]
        words = " ".join(text.split())
        if not 2 <= len(words) <= 300:
            turn.say(t("driver.fail_other", turn.lang, ref=await _ref(turn, order_id)))
            return True
        await turn.finish()
        await _failed(turn, order_id, words)
    else:
        return False
    return True


async def _fail_reason(turn: Turn, order_id: int, reason: str) -> None:
    ref = await _ref(turn, order_id)
    if reason == "other":
        await turn.goto(FAIL_OTHER, order=order_id)
        turn.say(t("driver.fail_other", turn.lang, ref=ref))
        return
    if reason not in FAIL_REASONS:
        raise DomainError("denied.button")
    await _failed(turn, order_id, reason)


async def _failed(turn: Turn, order_id: int, reason: str) -> None:
    lang = turn.lang
    ref = await _ref(turn, order_id)
    await turn.svc.stops.fail(turn.driver_id, order_id, reason, turn.actor)
    nxt = await _next_text(turn)
    if reason in FAIL_REASONS[:-1]:
        text = t("driver.failed", lang, ref=ref, reason=t(f"reason.{reason}", lang), next=nxt)
    else:  # her own words: she is told who reads them
        text = t("driver.failed_note", lang, ref=ref, next=nxt)
    turn.say(text, buttons=undo(turn, order_id))


FLOW = Flow("driver", frozenset({Role.DRIVER}), run)
