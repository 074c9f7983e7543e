"""The dispatcher's live board: a signed link (a Telegram Mini App, or any browser) for a
dispatcher or an owner; what the board shows (drivers' positions, their routes and stops by
status, waiting and at-risk orders), read once for every open board; and its actions (assign,
reassign, cancel) through the same services the chat commands use.

One business per instance: every dispatcher and owner of the instance sees the whole board.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, func, select

from core.db import Database
from core.drivers.stops import OPEN, first_name, ref_of
from core.errors import DomainError, NotFound
from core.models import (
    Driver,
    LocationPing,
    Member,
    MemberRole,
    Order,
    OrderStatus,
    OrderWindow,
    Role,
    Route,
    RouteStop,
    ShiftState,
    StopKind,
)
from core.orders import service as orders
from core.orders.lifecycle import Actor
from core.validation import MAX_ID
from core.webviews import initdata, links

if TYPE_CHECKING:
    from core.bootstrap import Services

PURPOSE = "board"
STAFF = (Role.DISPATCHER, Role.OWNER)
WAITING = (OrderStatus.NEW, OrderStatus.RESCHEDULED)
FINAL = (OrderStatus.DELIVERED, OrderStatus.RETURNED, OrderStatus.CANCELLED, OrderStatus.FAILED)
LIST_MAX = 200  # waiting / at-risk orders listed, at most (the count says how many in all)
HEADING_HOURS = 12  # a heading older than this is not shown
PAGE_WORDS = (
    "title",
    "drivers",
    "waiting",
    "at_risk",
    "none",
    "assign",
    "reassign",
    "cancel",
    "cancel_sure",
    "pick_driver",
    "last_seen",
    "live",
    "off_shift",
    "no_map",
    "offline",
    "stops",
    "late_by",
)


class NotStaff(DomainError):
    """A genuine link whose holder is no (longer a) dispatcher or owner."""


@dataclass(frozen=True)
class Viewer:
    member_id: int
    telegram_user_id: int | None  # opened as a Mini App: actions must carry its initData


async def link(svc: Services, member_id: int, telegram_user_id: int | None) -> str:
    """A new board link for this dispatcher or owner (a Mini App's when `telegram_user_id`)."""
    ttl = timedelta(minutes=svc.settings.app.board_link_minutes)
    token = await links.issue(
        svc.db, svc.signer.key, PURPOSE, member_id, svc.clock(), ttl,
        telegram_user_id=telegram_user_id,
    )  # fmt: skip
    return f"{svc.signer.base_url}/board/{token}"


async def open_board(svc: Services, token: str) -> Viewer:
    """Who holds this link, if it is a genuine, current board link of an active dispatcher or
    owner (roles are checked now: a dispatcher who lost the role loses the board)."""
    found = await links.check(svc.db, svc.signer.key, token, PURPOSE, svc.clock())
    async with svc.db.reads() as session:
        member = await session.get(Member, found.member_id)
        roles = await session.exec(
            select(MemberRole.role).where(
                MemberRole.member_id == found.member_id, col(MemberRole.role).in_(STAFF)
            )
        )
        staff = roles.first() is not None
    if member is None or not member.active or not staff:
        raise NotStaff("board.not_staff")
    return Viewer(found.member_id, found.telegram_user_id)


def csrf(key: bytes, token: str) -> str:
    """The page's action key: only a page that was given the link can post its actions."""
    return hmac.new(key, f"board-actions:{token}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, token: str, given: str) -> None:
    if not hmac.compare_digest(csrf(key, token), given):
        raise links.BadLink("link.bad")


def check_mini_app(svc: Services, viewer: Viewer, raw: str) -> None:
    """A link made for Telegram acts only with Telegram's initData for the same user (checked
    as the pad checks it: HMAC with the bot token, max age)."""
    if viewer.telegram_user_id is None:
        return
    value = svc.settings.telegram.bot_token
    bot_token = value.get_secret_value() if value else ""
    if not bot_token:
        raise initdata.BadInitData("webapp.bad")
    max_age = timedelta(seconds=svc.settings.telegram.init_data_max_age_s)
    checked = initdata.check(raw, bot_token, svc.clock(), max_age)
    if checked.user_id != viewer.telegram_user_id:
        raise initdata.BadInitData("webapp.bad")


# --- actions: the chat's services ---


def _id(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DomainError(key)
    text = str(value).strip()
    if not text.isdigit() or len(text) > 10 or not 0 < int(text) <= MAX_ID:
        raise DomainError(key)
    return int(text)


async def assign(
    svc: Services, viewer: Viewer, order_id: object, driver_id: object
) -> tuple[str, str]:
    """Assign (or reassign) by hand, as `/assign` does: a manual assignment the autopilot keeps;
    the driver hears of it in her chat. Returns the order's reference and the driver's name."""
    order = _id(order_id, "board.bad_order")
    driver = _id(driver_id, "board.pick_driver")
    async with svc.db.reads() as session:
        seen = await session.get(Order, order)
        if seen is None:
            raise NotFound("board.bad_order")
        found = await session.exec(
            select(Member.active)
            .join(Driver, col(Driver.member_id) == Member.id)
            .where(Driver.id == driver)
        )
        if found.first() is not True:
            raise DomainError("board.pick_driver")
    name = await svc.planner.assign_manually(order, driver, Actor.member(viewer.member_id))
    return ref_of(seen), name


async def cancel(svc: Services, viewer: Viewer, order_id: object) -> str:
    """Cancel, as the order card's Cancel does. Returns the order's reference."""
    order = _id(order_id, "board.bad_order")
    async with svc.db.reads() as session:
        found = await session.get(Order, order)
    if found is None:
        raise NotFound("board.bad_order")
    actor = Actor.member(viewer.member_id)
    rules = svc.settings.orders
    await orders.change_status(svc.db, order, OrderStatus.CANCELLED, actor, rules=rules)
    return ref_of(found)


# --- what the board shows ---


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def positions(db: Database, now: datetime) -> list[dict[str, Any]]:
    """Every active driver: where she is, when she was last seen, her heading if known."""
    since = now - timedelta(hours=HEADING_HOURS)
    heading = (  # her latest ping's, by the (driver, time) index: one look-up per driver
        select(LocationPing.heading)
        .where(LocationPing.driver_id == Driver.id, col(LocationPing.recorded_at) >= since)
        .order_by(col(LocationPing.recorded_at).desc())
        .limit(1)
        .correlate(Driver)
        .scalar_subquery()
    )
    async with db.reads() as session:
        rows = (
            await session.exec(
                select(Driver, Member.name, heading)
                .join(Member, col(Member.id) == Driver.member_id)
                .where(col(Member.active).is_(True))
                .order_by(col(Driver.id))
            )
        ).all()
    out = []
    for driver, name, last_heading in rows:
        located = driver.last_lat is not None and driver.last_lon is not None
        out.append(
            {
                "id": driver.id,
                "name": first_name(name),
                "on_shift": driver.shift_state is ShiftState.ON,
                "at": [driver.last_lat, driver.last_lon] if located else None,
                "seen": _iso(driver.last_seen_at),
                "live": bool(driver.live_until and driver.live_until > now),
                "heading": last_heading,
            }
        )
    return out


def _day_start(now: datetime, zone: str) -> datetime:
    local = now.astimezone(ZoneInfo(zone))
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)


async def snapshot(db: Database, now: datetime, zone: str) -> dict[str, Any]:
    """The whole board: drivers, each one's stops (still to visit, and visited today), and the
    waiting and at-risk orders."""
    drivers = await positions(db, now)
    today = _day_start(now, zone)
    async with db.reads() as session:
        stop_rows = (
            await session.exec(  # type: ignore[call-overload]
                sa.select(
                    col(Route.driver_id),
                    col(RouteStop.order_id),
                    col(RouteStop.kind),
                    col(RouteStop.sequence),
                    col(RouteStop.eta),
                    col(RouteStop.actual_departure),
                    col(Order.status),
                    col(Order.external_ref),
                    col(Order.address),
                    col(Order.lat),
                    col(Order.lon),
                    col(Order.pickup_lat),
                    col(Order.pickup_lon),
                )
                .join(Route, col(Route.id) == RouteStop.route_id)
                .join(Order, col(Order.id) == RouteStop.order_id)
                .where(
                    sa.or_(
                        col(RouteStop.actual_departure).is_(None),
                        col(RouteStop.actual_departure) >= today,
                    )
                )
                .order_by(col(Route.driver_id), col(RouteStop.sequence), col(RouteStop.id))
            )
        ).all()
        waiting_where = col(Order.status).in_(WAITING)
        waiting_total = (
            await session.exec(select(func.count()).select_from(Order).where(waiting_where))
        ).one()
        waiting = (
            await session.exec(
                select(Order).where(waiting_where).order_by(col(Order.id)).limit(LIST_MAX)
            )
        ).all()
        open_delivery = {
            row[1]: row[4]
            for row in stop_rows
            if row[5] is None and row[2] is StopKind.DELIVERY and row[4] and row[6] in OPEN
        }
        ends = await _window_ends(session, set(open_delivery))
    stops: dict[int, list[dict[str, Any]]] = {}
    late: list[dict[str, Any]] = []
    for (driver_id, order_id, kind, _, eta, left, status, ref, address, lat, lon,
         pickup_lat, pickup_lon) in stop_rows:  # fmt: skip
        pickup = kind is StopKind.PICKUP
        at = [pickup_lat, pickup_lon] if pickup else [lat, lon]
        where = None if at[0] is None or at[1] is None else at
        order_ref = ref or f"#{order_id}"
        stop = {
            "order": order_id,
            "ref": order_ref,
            "kind": kind.value,
            "status": status.value,
            "done": left is not None or status in FINAL,
            "at": where,
            "address": address,
        }
        stops.setdefault(driver_id, []).append(stop)
        end = ends.get(order_id)
        if not left and eta and end and eta > end and order_id in open_delivery:
            minutes = int((eta - end).total_seconds() // 60) + 1
            late.append({**stop, "driver": driver_id, "late_min": minutes})
    for driver in drivers:
        driver["stops"] = stops.get(driver["id"], [])
    late.sort(key=lambda s: -s["late_min"])
    return {
        "now": now.isoformat(),
        "drivers": drivers,
        "waiting": [
            {
                "order": o.id,
                "ref": ref_of(o),
                "status": o.status.value,
                "address": o.address,
                "at": [o.lat, o.lon] if o.lat is not None and o.lon is not None else None,
            }
            for o in waiting
        ],
        "waiting_total": waiting_total,
        "at_risk": late[:LIST_MAX],
        "at_risk_total": len(late),
    }


async def _window_ends(session: Any, order_ids: set[int]) -> dict[int, datetime]:
    """order id -> the end of its first delivery window."""
    if not order_ids:
        return {}
    rows = await session.exec(
        select(OrderWindow.order_id, OrderWindow.starts_at, OrderWindow.ends_at)
        .where(col(OrderWindow.order_id).in_(order_ids), OrderWindow.stop == StopKind.DELIVERY)
        .order_by(col(OrderWindow.starts_at).desc())
    )
    return {order_id: ends for order_id, _, ends in rows}  # the first (earliest) wins


class Reads:
    """One read for every board that asks at the same time. A caller waits for the next read
    that starts after it asked, so it never sees data older than its request."""

    def __init__(self, read: Callable[[], Awaitable[Any]]) -> None:
        self._read = read
        self._next: asyncio.Future[Any] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def get(self) -> Any:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._run())
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        while self._next is not None:
            future, self._next = self._next, None
            try:
                future.set_result(await self._read())
            except Exception as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: callers that left must not log it again
            finally:
                future.cancel()  # cancelled (the app stops): nobody waits for ever

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
