"""Drivers: /shift, /hours, live location, /route, and the stop buttons with their proofs and
reasons."""

from __future__ import annotations

from core.conversations import buttons, stop_buttons
from core.conversations.engine import Flow
from core.conversations.events import Command, Event, Location, Press, Text, Upload
from core.conversations.replies import Button, Link, Reply
from core.conversations.turn import Turn
from core.conversations.wording import when, window
from core.drivers import hours, loading, positions, shifts, stops
from core.drivers.stops import StopView
from core.models import Driver, OrderStatus, Role, StopKind
from core.texts import t
from core.webviews import driver as driver_page

ROUTE_MESSAGES = 10  # stops sent as their own message with buttons; the rest are listed


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Command):
        if event.name == "shift":
            await _shift(turn)
        elif event.name == "route":
            await _route(turn)
        elif event.name == "hours":
            await _hours(turn, event.args.strip())
        elif event.name == "stops":
            await offer_page(turn)
        else:
            return False
        return True
    if isinstance(event, Location):
        await _location(turn, event)
        return True
    if isinstance(event, Press):
        return await _press(turn, buttons.parse(event.data))
    if isinstance(event, Upload) and turn.at("proof.photo"):
        await stop_buttons.photo(turn, event)
        return True
    if isinstance(event, Text):
        return await stop_buttons.text(turn, event.text)
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


async def _hours(turn: Turn, args: str) -> None:
    """`/hours` shows her working hours, `/hours 08:00-16:00` sets them, `/hours off` drops them
    (drivers/hours.py: the planner counts on her from their start, before her shift)."""
    svc, lang = turn.svc, turn.lang
    if args.lower() in ("off", "none", "-"):
        await hours.set_hours(svc.db, turn.driver_id, None)
        turn.say(t("hours.off", lang))
        return
    if args:
        await hours.set_hours(svc.db, turn.driver_id, hours.parse(args))
    async with svc.db.reads() as session:
        driver = await session.get(Driver, turn.driver_id)
    if driver is None or driver.hours_from is None or driver.hours_until is None:
        turn.say(t("hours.none", lang))
        return
    starts, ends = (f"{h:%H:%M}" for h in (driver.hours_from, driver.hours_until))
    turn.say(t("hours.set" if args else "hours.show", lang, starts=starts, ends=ends))
    if args:
        await svc.autopilot.driver_ready(turn.driver_id)  # she may be counted on from now


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
        await positions.stop_sharing(svc.db, turn.driver_id, at)
        turn.say(t("location.stopped", lang))
        return
    fix = positions.Fix(
        lat=event.lat,
        lon=event.lon,
        at=at,
        live_until=event.live_until if event.live else None,
        live=event.live,
        accuracy_m=event.accuracy,
        heading=event.heading,
    )
    await svc.positions.ping(turn.driver_id, fix)
    if event.update:
        return
    if not await shifts.on_shift(svc.db, turn.driver_id):
        turn.say(t("shift.not_started", lang))
        return
    pins_only = not svc.conversations.channel(turn.chat).live_location  # (WhatsApp)
    if event.live or pins_only:
        if event.live:
            until = when(turn, event.live_until)
            turn.say(t("location.live_started", lang, until=until), close_keyboard=True)
        else:
            turn.say(t("location.pin", lang))
        started = await svc.stops.start_next(turn.driver_id, turn.actor)
        await svc.autopilot.driver_ready(turn.driver_id)  # she may take waiting orders now
        if started is not None and pins_only:  # her route starts: her stops on one page
            await offer_page(turn)
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
        row: tuple[Button, ...] = (
            Button(t("button.picked_up", lang), buttons.StopOp("pickup", order).pack()),
        )
    else:
        ops = (
            ("arrive", "button.arrived"),
            ("deliver", "button.delivered"),
            ("fail", "button.failed"),
        )
        row = tuple(Button(t(key, lang), buttons.StopOp(op, order).pack()) for op, key in ops)
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
    if not svc.conversations.channel(turn.chat).live_location:  # (WhatsApp)
        await offer_page(turn)


async def offer_page(turn: Turn) -> None:
    """A link to her stops on one page (a Mini App where the chat has them)."""
    telegram_user = turn.mini_app_user()
    url = await driver_page.link(turn.svc, turn.member_id, telegram_user)
    button = Link(t("button.stops_page", turn.lang), url, web_app=telegram_user is not None)
    turn.say(t("driver.stops_page", turn.lang), link=button)


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
        return await stop_buttons.stop_op(turn, data.op, data.order)
    elif isinstance(data, buttons.Fail):
        await stop_buttons.fail_reason(turn, data.order, data.reason)
    else:
        return False
    return True


FLOW = Flow("driver", frozenset({Role.DRIVER}), run)
