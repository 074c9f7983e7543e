"""The demo's simulated people. They act only through the sandbox channel, as a person in a chat
would: commands, live locations, pressing the buttons their chat shows, a proof photo.

A driver knows her route as /route tells it (read here from the route the service saved, which
is what /route shows); she drives each leg at the travel model's speed (core.routing.travel,
through the service's own provider), shares her position on the way, waits at the door until
the window opens, taps Arrived and Delivered (with a generated photo when the order needs one)
or, where nobody is home, Failed → "not home". Customers rate deliveries and, after "not home",
pick the first new slot offered."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from PIL import Image, ImageDraw

from bot.sandbox.channel import SandboxChannel, photo_upload
from bot.sandbox.chats import Shown
from core.conversations import buttons
from core.conversations.events import Command, Event, Location, Press
from core.drivers.stops import StopView, route_of
from core.models import StopKind
from core.routing.travel import Point

log = logging.getLogger(__name__)
PING_EVERY = timedelta(minutes=2)
RESHARE = timedelta(minutes=10)  # she shares anew this long before her sharing would end
SERVICE = timedelta(minutes=4)  # at a door: hand over, photo, back to the vehicle
LOOK_BACK = 30  # messages of her chat a person looks through for a button


def find_button(messages: list[Shown], wanted: buttons.Data) -> str | None:
    data = wanted.pack()
    for shown in reversed(messages[-LOOK_BACK:]):
        if any(d == data for _, d in (*shown.buttons, *shown.choices)):
            return data
    return None


def proof_photo(ref: str, at: datetime, seed: int) -> bytes:
    """A small generated JPEG: a parcel at a door, with the order and the time on it."""
    rng = np.random.default_rng(seed)
    r, g, b = (int(v) for v in rng.integers(90, 200, 3))
    image = Image.new("RGB", (320, 240), (r, g, b))
    draw = ImageDraw.Draw(image)
    draw.rectangle((110, 90, 210, 170), fill=(176, 126, 70), outline=(90, 60, 30), width=3)
    draw.line((160, 90, 160, 170), fill=(230, 210, 150), width=6)
    draw.text((12, 12), f"{ref}  {at:%H:%M}", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


@dataclass
class Driving:
    """A simulated driver: where she is and where she is going."""

    key: str
    driver_id: int
    starts: datetime
    ends: datetime
    here: tuple[float, float]
    state: str = "off"  # off | on | done
    heading: tuple[int, StopKind] | None = None
    leg_from: tuple[float, float] = (0.0, 0.0)
    leg_start: datetime | None = None
    leg_end: datetime | None = None
    leg_m: float = 0.0
    leg_counted: bool = True  # its distance is in `driven_m` (or there is no leg)
    busy_until: datetime | None = None
    pinged: datetime | None = None
    live_until: datetime | None = None  # when her current live share ends
    driven_m: float = 0.0
    driven_s: float = 0.0
    done: list[tuple[int, StopKind]] = field(default_factory=list)
    blind_presses: int = 0
    idle_until: datetime | None = None  # nothing to do before then (None: she is busy)

    def free_until(self, now: datetime) -> datetime | None:
        """Until when she has nothing to do (not driving, not at a door): her shift's start,
        a window opening while she waits at the door, her shift's end with no stops; None
        while she is busy."""
        if self.state == "done":
            return datetime.max.replace(tzinfo=now.tzinfo)
        if self.state == "off":
            return self.starts
        return self.idle_until


class People:
    def __init__(self, sandbox: SandboxChannel, away: set[int], seed: int) -> None:
        self.sandbox = sandbox
        self.away = away  # order ids whose customer is out at the first attempt
        self.seed = seed
        self.travel = sandbox.services.planner.travel
        self.failed_once: set[int] = set()
        self.rated: set[int] = set()
        self.looked: dict[str, int] = {}  # customer key -> last message id read
        self.more_to_come = True  # orders may still come (the shop's, or back from a failure)

    async def play(self, turn: Callable[[datetime], Awaitable[None]], every_s: float) -> None:
        """One person's (or the customers') turns, on the service's clock, until cancelled; a
        turn that fails is logged and the next one goes on, as a person would try again."""
        clock = self.sandbox.services.clock
        while True:
            try:
                await turn(clock())
            except Exception:
                log.exception("a simulated person's turn failed")
            await asyncio.sleep(every_s)

    async def say(self, key: str, event: Event) -> list[Shown]:
        return await self.sandbox.send(key, event)

    async def press(self, key: str, wanted: buttons.Data, driver: Driving | None = None) -> None:
        """Press a button her chat shows; if it is not there, she asks for /route first."""
        chats = self.sandbox.chats
        data = find_button(chats.messages(key), wanted)
        if data is None:
            await self.say(key, Command("route"))
            data = find_button(chats.messages(key), wanted)
        if data is None:  # a person would look harder; the button's data is what it carries
            log.warning("%s: no %s button in her chat; pressing it anyway", key, wanted.pack())
            if driver is not None:
                driver.blind_presses += 1
            data = wanted.pack()
        await self.say(key, Press(data))

    # -- drivers ----------------------------------------------------------------------------

    async def drive(self, d: Driving, now: datetime) -> None:
        if d.state == "done":
            return
        if d.state == "off":
            if now >= d.starts:
                await self.say(d.key, Command("shift"))
                await self.share(d, now, live=True)
                d.state = "on"
            return
        await self.follow_route(d, now, self.more_to_come)
        if d.state == "on" and d.live_until is not None and now >= d.live_until - RESHARE:
            await self.share(d, now, live=True)  # her sharing is about to end: she shares again
        elif d.state == "on" and (d.pinged is None or now - d.pinged >= PING_EVERY):
            await self.share(d, now)  # her live location keeps coming, wherever she is

    async def follow_route(self, d: Driving, now: datetime, more_to_come: bool) -> None:
        d.idle_until = None
        if d.busy_until is not None and now < d.busy_until:
            return
        route = await route_of(self.sandbox.services.db, d.driver_id)
        if not route:
            if now >= d.ends or not more_to_come:
                await self.end_shift(d)
            d.idle_until = d.ends  # unless an order comes
            return
        await self.follow(d, route[0], now)

    async def follow(self, d: Driving, head: StopView, now: datetime) -> None:
        assert head.lat is not None and head.lon is not None
        if d.heading != (head.order_id, head.kind):  # a new leg (or a re-plan changed it)
            if not d.leg_counted and d.leg_start is not None and d.leg_end is not None:
                span = (d.leg_end - d.leg_start).total_seconds()  # turned round mid-leg:
                share = min(1.0, (now - d.leg_start).total_seconds() / span) if span > 0 else 1.0
                d.driven_m += share * d.leg_m  # what she drove of it counts
                d.driven_s += share * span
            d.heading, d.leg_from, d.leg_start = (head.order_id, head.kind), d.here, now
            d.leg_counted = False
            leg = await self.travel.matrix(
                [Point(*d.here)], [Point(head.lat, head.lon)], depart_at=now
            )
            seconds = float(leg.durations[0, 0])
            d.leg_m, d.leg_end = float(leg.distances[0, 0]), now + timedelta(seconds=seconds)
        assert d.leg_start is not None and d.leg_end is not None
        if now < d.leg_end:
            span = (d.leg_end - d.leg_start).total_seconds()
            share = min(1.0, (now - d.leg_start).total_seconds() / span) if span > 0 else 1.0
            lat0, lon0 = d.leg_from
            d.here = (lat0 + share * (head.lat - lat0), lon0 + share * (head.lon - lon0))
            return
        if not d.leg_counted:  # she is there: the leg is driven
            d.here, d.leg_counted = (head.lat, head.lon), True
            d.driven_m += d.leg_m
            d.driven_s += (d.leg_end - d.leg_start).total_seconds()
            await self.share(d, now)
        if head.window is not None and now < head.window[0]:
            d.idle_until = head.window[0]
            return  # early: she waits at the door
        await self.serve(d, head, now)
        d.done.append((head.order_id, head.kind))
        d.heading, d.busy_until = None, now + SERVICE

    async def serve(self, d: Driving, head: StopView, now: datetime) -> None:
        order, key = head.order_id, d.key
        if head.kind is StopKind.PICKUP:
            await self.press(key, buttons.StopOp("pickup", order), d)
            return
        await self.press(key, buttons.StopOp("arrive", order), d)
        if order in self.away and order not in self.failed_once:
            self.failed_once.add(order)
            await self.press(key, buttons.StopOp("fail", order), d)
            await self.press(key, buttons.Fail(order, "not_home"), d)
            return
        await self.press(key, buttons.StopOp("deliver", order), d)
        if head.proof.value == "photo":
            photo = proof_photo(head.ref, now, self.seed * 100_003 + order)
            await self.say(key, photo_upload(photo, f"{head.ref}.jpg"))

    async def share(self, d: Driving, now: datetime, *, live: bool = False) -> None:
        """Her live location: a new share (`live`) starts it until an hour after her shift (or
        from now, when she works late), later ones move it."""
        lat, lon = d.here
        if live:
            d.live_until = max(d.ends, now) + timedelta(hours=1)
        await self.say(d.key, Location(lat, lon, live=True, live_until=d.live_until, at=now,
                                       update=not live))  # fmt: skip
        d.pinged = now

    async def end_shift(self, d: Driving) -> None:
        await self.say(d.key, Command("shift"))
        await self.press(d.key, buttons.ShiftOp("end"), d)
        d.state = "done"

    # -- customers --------------------------------------------------------------------------

    async def customers(self, keys: list[str], now: datetime) -> None:
        chats = self.sandbox.chats
        for key in keys:
            seen = self.looked.get(key, 0)
            fresh = [m for m in chats.messages(key) if m.id > seen and not m.mine]
            if not fresh:
                continue
            self.looked[key] = fresh[-1].id
            for shown in fresh:
                await self.answer(key, shown, now)

    async def answer(self, key: str, shown: Shown, now: datetime) -> None:
        for _, data in (*shown.buttons, *shown.choices):
            wanted = buttons.parse(data)
            if isinstance(wanted, buttons.Act) and wanted.name == "customer.pick_new_slot":
                await self.say(key, Press(data))
                return
            if isinstance(wanted, buttons.Slot) and wanted.by == "c":
                await self.say(key, Press(data))  # the first slot offered
                return
            if isinstance(wanted, buttons.Rate) and wanted.order not in self.rated:
                stars = 5 if (wanted.order * 7 + self.seed) % 4 else 4
                if wanted.stars == stars:
                    self.rated.add(wanted.order)
                    await self.say(key, Press(data))
                    return
