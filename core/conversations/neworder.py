"""/neworder: a guided conversation that ends in core.orders.service.create_order.

name → phone (/skip) → address (text, geocoded; or a pin) → [pick one of ≤3] → window (/skip)
→ weight (/skip) → notes (/skip) → confirm, start over, or cancel. Every answer is checked as it
comes, so a mistake is corrected on the spot and nothing is saved until "Create"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from core.conversations import buttons
from core.conversations.engine import Flow
from core.conversations.events import Command, Event, Location, Press, Text
from core.conversations.replies import Button, Choices, OutFile
from core.conversations.turn import Turn
from core.conversations.wording import window
from core.drivers.stops import ref_of
from core.errors import DomainError
from core.geo.geocoding import parse_pin
from core.models import Role
from core.notify.messages import tracking_link
from core.orders import service as orders
from core.orders.lifecycle import Window
from core.people import invites
from core.texts import t
from core.validation import describe

SKIP = "/skip"
MAX_TEXT = {"name": 200, "notes": 2000}
STEP = "neworder."


async def run(turn: Turn, event: Event) -> bool:
    if isinstance(event, Command) and event.name == "neworder":
        await turn.finish()
        await turn.goto(f"{STEP}name")
        turn.say(t("neworder.name", turn.lang))
        return True
    if isinstance(event, Press):
        return await _press(turn, buttons.parse(event.data))
    if not turn.at(STEP) or turn.at(f"{STEP}choose") or turn.at(f"{STEP}confirm"):
        return False
    if isinstance(event, Location) and (event.update or event.ended):
        return False  # a live share's next position is not an answer
    if isinstance(event, Location) and turn.at(f"{STEP}address"):
        await _pin(turn, event.lat, event.lon)
        return True
    if isinstance(event, Command) and event.name == "skip":
        await _answer(turn, SKIP)
        return True
    if isinstance(event, Command):
        return False
    await _answer(turn, event.text if isinstance(event, Text) else "")
    return True


def _text(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if not text:
        raise DomainError("neworder.bad_text")
    if len(text) > limit:
        raise DomainError("neworder.too_long", limit=limit)
    return text


async def _answer(turn: Turn, raw: str) -> None:
    svc, lang = turn.svc, turn.lang
    step = turn.step.name.removeprefix(STEP) if turn.step else ""
    if step == "name":
        await turn.goto(f"{STEP}phone", customer_name=_text(raw, MAX_TEXT["name"]))
        turn.say(t("neworder.phone", lang))
    elif step == "phone":
        text = _text(raw, 40)
        phone = (
            None if text == SKIP else orders.normalize_phone(text, svc.settings.app.phone_region)
        )
        await turn.goto(f"{STEP}address", customer_phone=phone)
        turn.say(t("neworder.address", lang))
    elif step == "address":
        await _address(turn, _text(raw, 500))
    elif step == "window":
        text = _text(raw, 60)
        chosen = None
        if text != SKIP:
            parsed = orders.parse_window_text(text, svc.clock(), turn.zone)
            chosen = [parsed.starts_at.isoformat(), parsed.ends_at.isoformat()]
        await turn.goto(f"{STEP}size", window=chosen)
        turn.say(t("neworder.size", lang))
    elif step == "size":
        await turn.goto(f"{STEP}notes", weight_kg=_weight(_text(raw, 20)))
        turn.say(t("neworder.notes", lang))
    elif step == "notes":
        text = _text(raw, MAX_TEXT["notes"])
        draft = _draft({**turn.data, "notes": "" if text == SKIP else text})  # all checked together
        await turn.goto(f"{STEP}confirm", notes=draft.notes)
        turn.say(_summary(turn, draft), buttons=_confirm_buttons(lang))


def _weight(text: str) -> float | None:
    if text == SKIP:
        return None
    try:
        weight = float(text.lower().removesuffix("kg").strip())
    except ValueError:
        raise DomainError("neworder.bad_size", text=text) from None
    if not 0 <= weight <= 10_000:
        raise DomainError("neworder.bad_size", text=text)
    return weight


async def _address(turn: Turn, text: str) -> None:
    if point := parse_pin(text):
        await _pin(turn, *point)
        return
    places = await turn.svc.geocoder.search(text)
    if not places:
        turn.say(t("neworder.no_match", turn.lang, text=text))
        return
    if len(places) == 1:
        await _place(turn, places[0].label, places[0].lat, places[0].lon, typed=text)
        return
    found = [{"label": p.label, "lat": p.lat, "lon": p.lon} for p in places[:3]]
    await turn.goto(f"{STEP}choose", places=found, typed=text)
    rows = tuple(
        Button(p.label[:60], buttons.DraftOp("place", i).pack()) for i, p in enumerate(places[:3])
    )
    turn.say(t("neworder.choose", turn.lang), choices=Choices(rows))


async def _pin(turn: Turn, lat: float, lon: float) -> None:
    """A dropped (or typed) pin: the address there, else "📍 Dropped pin"."""
    label = await turn.svc.geocoder.name_point(lat, lon) or t("neworder.address_pin", turn.lang)
    await _place(turn, label, lat, lon)


async def _place(turn: Turn, label: str, lat: float, lon: float, typed: str | None = None) -> None:
    await turn.goto(f"{STEP}window", address=typed or label, lat=lat, lon=lon, places=None)
    example = orders.window_example(turn.svc.clock(), turn.zone)
    turn.say(t("neworder.window", turn.lang, example=example))


def _draft(data: dict[str, Any]) -> orders.OrderDraft:
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


def _summary(turn: Turn, draft: orders.OrderDraft) -> str:
    first = draft.windows[0] if draft.windows else None
    return t(
        "neworder.summary",
        turn.lang,
        name=draft.customer_name,
        phone=f" · {draft.customer_phone}" if draft.customer_phone else "",
        address=draft.address,
        window=window(turn, first.starts_at, first.ends_at) if first else "",
        size=f"\n{draft.weight_kg} kg" if draft.weight_kg is not None else "",
        notes=f"\n{draft.notes}" if draft.notes else "",
    )


def _confirm_buttons(lang: str) -> tuple[Button, ...]:
    ops = (("create", "button.confirm"), ("edit", "button.edit"), ("abort", "button.abort"))
    return tuple(Button(t(key, lang), buttons.DraftOp(op).pack()) for op, key in ops)


async def _press(turn: Turn, data: buttons.Data | None) -> bool:
    if not isinstance(data, buttons.DraftOp):
        return False
    lang = turn.lang
    if data.op == "abort":
        await turn.finish()
        turn.say(t("neworder.cancelled", lang))
    elif data.op == "place" and turn.at(f"{STEP}choose"):
        places = turn.data["places"]
        place = places[min(data.index, len(places) - 1)]
        await _place(turn, place["label"], place["lat"], place["lon"])
    elif data.op == "edit" and turn.at(f"{STEP}confirm"):
        await turn.finish()
        await turn.goto(f"{STEP}name")
        turn.say(t("neworder.name", lang))
    elif data.op == "create" and turn.at(f"{STEP}confirm"):
        await _create(turn)
    else:
        return False
    return True


async def _create(turn: Turn) -> None:
    svc = turn.svc
    draft = _draft(turn.data)
    source = turn.chat.channel.value
    order = await orders.create_order(
        svc.db, draft, turn.actor, source=source, rules=svc.settings.orders
    )
    await turn.finish()
    token = order.tracking_token
    link = tracking_link(svc.settings, token)
    subscribe = await svc.conversations.channel(turn.chat).start_link(token) or link
    text = t("neworder.created", turn.lang, ref=ref_of(order), link=link, subscribe=subscribe)
    qr = OutFile("qr", f"order-{order.id}.png", content=invites.qr_png(subscribe))
    turn.say(text, file=qr)


FLOW = Flow("neworder", frozenset({Role.DISPATCHER, Role.OWNER}), run)
