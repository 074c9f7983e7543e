"""What a customer's tracking link shows, and nothing more.

Privacy rules: the token is the only key (144 random bits); the driver appears by first name and
vehicle, and her position only while this order is out for delivery; no other order, stop or
address is ever included; the page expires `TRACKING_PAGE_DAYS` after the order's final state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.errors import DomainError, NotFound
from core.lifecycle import FINAL
from core.models import (
    Driver,
    Member,
    Order,
    OrderEvent,
    OrderStatus,
    Proof,
    ProofKind,
    utcnow,
)
from core.routing.travel import Point, haversine_m
from core.services.stops import delivery_eta, delivery_window, first_name, ref_of

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
    updated_at: datetime = field(default_factory=utcnow)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in list(data.items()):
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["steps"] = [{"step": s.step, "at": s.at.isoformat()} for s in self.steps]
        data["window"] = [w.isoformat() for w in self.window] if self.window else None
        data["status"] = self.status.value
        return data


def eta_range(eta: datetime, now: datetime) -> tuple[datetime, datetime]:
    """± a quarter of the time left, at least 2 and at most 30 minutes."""
    left = max((eta - now).total_seconds(), 0)
    margin = timedelta(seconds=min(max(left / 4, 120), 1800))
    return eta - margin, eta + margin


async def order_by_token(db: Database, token: str, *, keep_days: float, now: datetime) -> Order:
    async with db.reads() as session:
        return await _find(session, token, keep_days=keep_days, now=now)


async def _find(session: AsyncSession, token: str, *, keep_days: float, now: datetime) -> Order:
    if not token or len(token) > 64:
        raise NotFound("tracking.unknown")
    order = (await session.exec(select(Order).where(Order.tracking_token == token))).first()
    if order is None:
        raise NotFound("tracking.unknown")
    if order.final_at is not None and now - order.final_at > timedelta(days=keep_days):
        raise Expired("tracking.expired")
    return order


async def tracking_view(
    db: Database, token: str, *, keep_days: float, now: datetime | None = None
) -> TrackingView:
    now = now or utcnow()
    async with db.reads() as session:  # one snapshot: the order and all it shows agree
        order = await _find(session, token, keep_days=keep_days, now=now)
        assert order.id is not None
        events = list(
            await session.exec(
                select(OrderEvent)
                .where(OrderEvent.order_id == order.id)
                .order_by(col(OrderEvent.id))
            )
        )
        window = await delivery_window(session, order.id)
        eta = await delivery_eta(session, order.id)
        driver = await session.get(Driver, order.driver_id) if order.driver_id else None
        member = await session.get(Member, driver.member_id) if driver else None
        photo = (
            await session.exec(
                select(Proof.id).where(Proof.order_id == order.id, Proof.kind == ProofKind.PHOTO)
            )
        ).first()
    steps = []
    for event in events:
        name = "nearby" if event.kind == "driver_nearby" else None
        if event.kind in ("created", "status_changed") and event.to_status in STEP_OF_STATUS:
            name = STEP_OF_STATUS[event.to_status]
        if name:
            steps.append(Step(name, event.created_at))
    moving = order.status is S.OUT_FOR_DELIVERY
    here = (driver.last_lat, driver.last_lon) if moving and driver and driver.last_lat else None
    there = (order.lat, order.lon) if moving and order.lat is not None else None
    distance = None
    if here and there:
        distance = int(haversine_m([Point(*here)], [Point(*there)])[0, 0])  # type: ignore[arg-type]
    shown_eta = eta if order.status in (S.ASSIGNED, S.PICKED_UP, S.OUT_FOR_DELIVERY) else None
    low, high = eta_range(shown_eta, now) if shown_eta else (None, None)
    return TrackingView(
        ref=ref_of(order),
        status=order.status,
        final=order.status in FINAL,
        steps=steps,
        window=(window.starts_at, window.ends_at) if window else None,
        eta=shown_eta,
        eta_from=low,
        eta_to=high,
        driver=first_name(member.name) if member and order.status not in FINAL else None,
        vehicle=driver.vehicle_type.value if driver and order.status not in FINAL else None,
        driver_at=here,  # type: ignore[arg-type]
        destination=there,  # type: ignore[arg-type]
        distance_m=distance,
        has_photo=photo is not None and order.status is S.DELIVERED,
        rating=order.rating,
        updated_at=now,
    )


async def proof_photo_path(db: Database, token: str, *, keep_days: float) -> str | None:
    """The stored proof photo of a delivered order (relative to the data directory)."""
    async with db.reads() as session:
        order = await _find(session, token, keep_days=keep_days, now=utcnow())
        if order.status is not S.DELIVERED:
            return None
        proof = (
            await session.exec(
                select(Proof)
                .where(Proof.order_id == order.id, Proof.kind == ProofKind.PHOTO)
                .order_by(col(Proof.id).desc())
            )
        ).first()
    return proof.stored_path if proof else None


async def rate_by_token(
    db: Database, token: str, stars: int, comment: str | None, *, keep_days: float
) -> None:
    """A rating from the tracking page (the link is the customer's key)."""
    if not 1 <= stars <= 5:
        raise DomainError("customer.rating_range")
    order = await order_by_token(db, token, keep_days=keep_days, now=utcnow())
    async with db.transaction() as session:
        fresh = await session.get(Order, order.id)
        assert fresh is not None
        if fresh.status is not S.DELIVERED:
            raise DomainError("customer.rate_after_delivery", order=order.id)
        fresh.rating = stars
        fresh.rating_comment = (comment or "").strip()[:1000] or fresh.rating_comment
        fresh.rated_at = utcnow()
        session.add(fresh)
