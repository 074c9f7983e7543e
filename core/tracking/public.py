"""What a customer's tracking link shows, and nothing more.

Privacy rules: the token is the only key (144 random bits); the driver appears by first name and
vehicle, and her position only while this order is out for delivery; no other order, stop or
address is ever included; the page expires `TRACKING_PAGE_DAYS` after the order's final state.

`read_views` reads the views of many tokens in one statement (see `live.Views`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col

from core.db import READ_ONLY, Database
from core.drivers.proofs import latest_drawn, latest_photo
from core.drivers.stops import first_name, ref_of
from core.errors import DomainError, NotFound
from core.models import (
    Customer,
    Driver,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    OrderWindow,
    Proof,
    ProofKind,
    RouteStop,
    StopKind,
    is_tracking_token,
    open_stop,
)
from core.orders.lifecycle import FINAL
from core.routing.travel import Point, straight_m

S = OrderStatus
STEP_OF_STATUS = {
    S.NEW: "confirmed",
    S.OUT_FOR_DELIVERY: "on_the_way",
    S.ARRIVED: "arrived",
    S.DELIVERED: "delivered",
    S.FAILED: "failed",
    S.RESCHEDULED: "rescheduled",
    S.RETURNED: "returned",
    S.CANCELLED: "cancelled",
}
STEPS = (*STEP_OF_STATUS.values(), "nearby")


class Expired(DomainError):
    """The order ended long enough ago that its page is gone."""


@dataclass(frozen=True)
class Step:
    step: str  # confirmed | on_the_way | nearby | arrived | delivered | failed | …
    at: datetime


@dataclass(frozen=True)
class TrackingView:
    order_id: int  # not shown (as_json leaves it out): what live updates watch
    final_at: datetime | None  # not shown: when the page expires
    ref: str
    status: OrderStatus
    final: bool
    steps: list[Step]
    window: tuple[datetime, datetime] | None
    eta: datetime | None
    eta_from: datetime | None  # the ETA as a window that narrows as she comes closer
    eta_to: datetime | None
    driver: str | None
    vehicle: str | None
    driver_at: tuple[float, float] | None  # only while out for delivery
    destination: tuple[float, float] | None  # only while out for delivery
    distance_m: int | None
    has_photo: bool
    rating: int | None
    updated_at: datetime
    language: str | None = None  # not shown: the customer's language, if known
    has_signature: bool = False  # a signature drawn on the pad (shown once delivered)

    def as_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "ref": self.ref,
            "status": self.status.value,
            "final": self.final,
            "steps": [{"step": s.step, "at": s.at.isoformat()} for s in self.steps],
            "window": [iso(w) for w in self.window] if self.window else None,
            "eta": iso(self.eta),
            "eta_from": iso(self.eta_from),
            "eta_to": iso(self.eta_to),
            "driver": self.driver,
            "vehicle": self.vehicle,
            "driver_at": list(self.driver_at) if self.driver_at else None,
            "destination": list(self.destination) if self.destination else None,
            "distance_m": self.distance_m,
            "has_photo": self.has_photo,
            "has_signature": self.has_signature,
            "rating": self.rating,
            "updated_at": self.updated_at.isoformat(),
        }

    @cached_property
    def body(self) -> bytes:
        """as_json() encoded, once per view however many pages it is sent to."""
        return json.dumps(self.as_json(), separators=(",", ":")).encode()

    def expired(self, keep_days: float, now: datetime) -> bool:
        return self.final_at is not None and now - self.final_at > timedelta(days=keep_days)


def eta_range(eta: datetime, now: datetime) -> tuple[datetime, datetime]:
    """± a quarter of the time left, at least 2 and at most 30 minutes."""
    left = max((eta - now).total_seconds(), 0)
    margin = timedelta(seconds=min(max(left / 4, 120), 1800))
    return eta - margin, eta + margin


def _views_statement() -> sa.Select[Any]:
    """The orders of some tokens with all their pages show: one row per order event."""
    other = aliased(OrderWindow)
    first_window = (
        sa.select(col(other.id))
        .where(col(other.order_id) == Order.id, col(other.stop) == StopKind.DELIVERY)
        .order_by(col(other.starts_at))
        .limit(1)
        .correlate(Order)
        .scalar_subquery()
    )
    eta = (
        sa.select(col(RouteStop.eta))
        .where(
            col(RouteStop.order_id) == Order.id,
            col(RouteStop.kind) == StopKind.DELIVERY,
            open_stop(),
        )
        .scalar_subquery()
    )
    photo = sa.exists().where(col(Proof.order_id) == Order.id, col(Proof.kind) == ProofKind.PHOTO)
    drawn = sa.exists().where(
        col(Proof.order_id) == Order.id, col(Proof.signature_sha256).is_not(None)
    )
    columns: tuple[Any, ...] = (
        col(Order.id), col(Order.tracking_token), col(Order.external_ref), col(Order.status),
        col(Order.final_at), col(Order.lat), col(Order.lon), col(Order.rating),
        col(Order.driver_id), col(Driver.last_lat), col(Driver.last_lon),
        col(Driver.vehicle_type), col(Member.name), col(OrderWindow.starts_at),
        col(OrderWindow.ends_at), eta.label("eta"), photo.label("has_photo"),
        col(OrderEvent.kind).label("event"), col(OrderEvent.to_status),
        col(OrderEvent.created_at).label("event_at"), col(Customer.language),
        drawn.label("has_signature"),
    )  # fmt: skip
    return (
        sa.select(*columns)
        .select_from(Order)
        .outerjoin(Customer, col(Customer.id) == Order.customer_id)
        .outerjoin(Driver, col(Driver.id) == Order.driver_id)
        .outerjoin(Member, col(Member.id) == Driver.member_id)
        .outerjoin(OrderWindow, col(OrderWindow.id) == first_window)
        .outerjoin(OrderEvent, col(OrderEvent.order_id) == Order.id)
        .where(col(Order.tracking_token).in_(sa.bindparam("tokens", expanding=True)))
        .order_by(col(Order.id), col(OrderEvent.id))
    )


VIEWS = _views_statement()


async def read_views(db: Database, tokens: Sequence[str], now: datetime) -> dict[str, TrackingView]:
    """The views of those tokens that exist, read in one statement (one snapshot)."""
    async with db.engine.connect() as connection:
        await connection.execution_options(**{READ_ONLY: True})
        rows = (await connection.execute(VIEWS, {"tokens": list(tokens)})).all()
    by_token: dict[str, list[Any]] = {}
    for row in rows:
        by_token.setdefault(row.tracking_token, []).append(row)
    return {token: _view(group, now) for token, group in by_token.items()}


def _view(rows: list[Any], now: datetime) -> TrackingView:
    order = rows[0]  # the order's columns repeat on each of its event rows
    steps = []
    for event in rows:
        name = "nearby" if event.event == "driver_nearby" else None
        if event.event in ("created", "status_changed") and event.to_status in STEP_OF_STATUS:
            name = STEP_OF_STATUS[event.to_status]
        if name:
            steps.append(Step(name, event.event_at))
    moving = order.status is S.OUT_FOR_DELIVERY
    driving = order.driver_id is not None
    here = (order.last_lat, order.last_lon) if moving and driving and order.last_lat else None
    there = (order.lat, order.lon) if moving and order.lat is not None else None
    distance = int(straight_m(Point(*here), Point(*there))) if here and there else None
    eta = order.eta if order.status in (S.ASSIGNED, S.PICKED_UP, S.OUT_FOR_DELIVERY) else None
    low, high = eta_range(eta, now) if eta else (None, None)
    shown = driving and order.status not in FINAL
    return TrackingView(
        order_id=order.id,
        final_at=order.final_at,
        ref=ref_of(order),  # a row has the fields it reads
        status=order.status,
        final=order.status in FINAL,
        steps=steps,
        window=(order.starts_at, order.ends_at) if order.starts_at else None,
        eta=eta,
        eta_from=low,
        eta_to=high,
        driver=first_name(order.name) if shown else None,
        vehicle=order.vehicle_type.value if shown else None,
        driver_at=here,
        destination=there,
        distance_m=distance,
        has_photo=bool(order.has_photo) and order.status is S.DELIVERED,
        rating=order.rating,
        updated_at=now,
        language=order.language,
        has_signature=bool(order.has_signature) and order.status is S.DELIVERED,
    )


async def tracking_view(
    db: Database, token: str, *, keep_days: float, now: datetime | None = None
) -> TrackingView:
    """One token's view, read on its own."""
    now = now or db.now()
    view = (await read_views(db, [token], now)).get(token) if is_tracking_token(token) else None
    if view is None:
        raise NotFound("tracking.unknown")
    if view.expired(keep_days, now):
        raise Expired("tracking.expired")
    return view


async def proof_photo(
    db: Database, token: str, *, keep_days: float, signature: bool = False
) -> Proof | None:
    """The proof photo (or with `signature` the signature drawn on the pad) of a delivered
    order (none before it is delivered)."""
    view = await tracking_view(db, token, keep_days=keep_days)
    if view.status is not S.DELIVERED:
        return None
    async with db.reads() as session:
        latest = latest_drawn if signature else latest_photo
        return await latest(session, view.order_id)


async def rate_by_token(
    db: Database, token: str, stars: int, comment: str | None, *, keep_days: float
) -> None:
    """A rating from the tracking page (the link is the customer's key)."""
    if not 1 <= stars <= 5:
        raise DomainError("customer.rating_range")
    view = await tracking_view(db, token, keep_days=keep_days)
    async with db.transaction() as session:
        order = await session.get(Order, view.order_id)
        assert order is not None
        if order.status is not S.DELIVERED:
            raise DomainError("customer.rate_after_delivery", order=ref_of(order))
        order.rating = stars
        order.rating_comment = (comment or "").strip()[:1000] or order.rating_comment
        order.rated_at = db.now()
        session.add(order)
