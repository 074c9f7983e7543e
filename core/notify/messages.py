"""Turning an outbox row into words, when it is sent: the order's current ETA, route position
and driver are read then, so a message never carries stale facts. Channel-neutral: a channel's
sender turns `actions` into its own buttons and attaches `photo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.config import Settings
from core.db import Database
from core.drivers.proofs import latest_photo
from core.drivers.stops import (
    FAIL_REASONS,
    delivery_eta,
    delivery_window,
    driver_names,
    first_name,
    ref_of,
    route_of,
)
from core.models import (
    Driver,
    Member,
    Order,
    OutboxMessage,
    tracking_url,
)
from core.storage import Files
from core.texts import staff_language, t

ABOUT_A_DRIVER = (
    "dispatcher.driver_stale",
    "dispatcher.shift_end_on_board",
    "dispatcher.driver_idle",
)


@dataclass(frozen=True)
class Rendered:
    text: str
    language: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    photo_file_id: str | None = None  # the channel's own copy (Telegram file_id)
    photo_path: Path | None = None  # our stored copy (relative to APP_DATA_DIR)
    document_path: Path | None = None  # a file to send as a document (relative to APP_DATA_DIR)


async def stored(files: Files, relative: Path | str) -> bytes | None:
    """The file a row names (a storage key), if it is kept (a name that is not a key, say one
    leading out of the folder, is refused). Raises `StorageError` while the object store is
    down and the spool does not hold it: the sender tries again later."""
    return await files.read(Path(relative).as_posix())


def tracking_link(settings: Settings, token: str) -> str:
    return tracking_url(str(settings.app.base_url), token)


def clock(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M") if moment else ""


def span(start: datetime, end: datetime, zone: ZoneInfo, lang: str | None = None) -> str:
    return t("time.span", lang, start=start.astimezone(zone), end=end.astimezone(zone))


async def render(db: Database, row: OutboxMessage, settings: Settings) -> Rendered:
    params: dict[str, Any] = {"reason": "", "attempt": "", **row.params}
    template = row.template
    for_customer = template.startswith("customer.")
    async with db.reads() as session:
        member = await session.get(Member, row.recipient_member_id)
        lang = member.language if member else settings.app.language
        if not for_customer:
            lang = staff_language(lang)
        if (code := params.get("reason_code")) in FAIL_REASONS[:-1]:  # not "other": free text
            params["reason"] = t(f"reason.{code}", lang)
        elif code and template == "customer.order_failed":  # the driver's words: staff only
            template = "customer.order_failed_no_reason"
        zone = ZoneInfo((member.timezone if member else None) or settings.app.timezone)
        order = await session.get(Order, row.order_id) if row.order_id else None
        photo_id = photo_path = None
        if order is not None:
            assert order.id is not None
            window = await delivery_window(session, order.id)
            eta = await delivery_eta(session, order.id)
            names = await driver_names(session, {order.driver_id} if order.driver_id else set())
            driver_name = first_name(names[order.driver_id]) if order.driver_id in names else None
            params.update(
                ref=ref_of(order),
                address=order.address,
                link=tracking_link(settings, order.tracking_token),
                driver=driver_name or t("msg.someone", lang),
                eta_line=t("msg.eta_line", lang, eta=clock(eta, zone)) if eta else "",
                window_line=(
                    t(
                        "msg.window_line",
                        lang,
                        window=span(window.starts_at, window.ends_at, zone, lang),
                    )
                    if window
                    else ""
                ),
            )
            if row.template == "customer.order_delivered":
                proof = await latest_photo(session, order.id)
                if proof is not None:
                    photo_id = proof.channel_file_id
                    photo_path = Path(proof.stored_path) if proof.stored_path else None
        if row.template in ABOUT_A_DRIVER and "driver_id" in params:
            driver = await session.get(Driver, params["driver_id"])
            driver_member = await session.get(Member, driver.member_id) if driver else None
            params["driver"] = driver_member.name if driver_member else "?"
        if row.template == "dispatcher.driver_stale":
            minutes = params.get("minutes")
            params["age"] = (
                t("msg.age_minutes", lang, minutes=minutes)
                if minutes is not None
                else t("msg.age_never", lang)
            )
    if row.template == "driver.order_assigned" and order is not None and order.driver_id:
        positions = {s.order_id: s.position for s in await route_of(db, order.driver_id)}
        params["position"] = positions.get(order.id, "?") if order.id is not None else "?"
    if row.template == "driver.route_changed":
        params["changes"] = route_change_lines(params, lang)
    if row.template in ("dispatcher.chat_undeliverable", "dispatcher.chat_unreachable"):
        params["about"] = t("msg.about_order", lang, ref=params.get("ref", "")) if order else ""
    if photo_path is None and params.get("photo_path"):  # a file we made (a report's chart)
        photo_path = Path(params["photo_path"])
    document = Path(params["document_path"]) if params.get("document_path") else None
    text = t(f"msg.{template}", lang, **params)
    return Rendered(text, lang, list(row.actions), photo_id, photo_path, document)


def route_change_lines(params: dict[str, Any], lang: str) -> str:
    """What changed on a driver's route, a line each: new stops, stops taken off, next stop."""
    lines = []
    if params.get("added"):
        lines.append(t("msg.route.added", lang, refs=", ".join(params["added"])))
    if params.get("removed"):
        lines.append(t("msg.route.removed", lang, refs=", ".join(params["removed"])))
    if params.get("first"):
        lines.append(t("msg.route.first", lang, ref=params["first"],
                       address=params.get("first_address", "")))  # fmt: skip
    return "".join(lines)
