"""The shop's system: it sends each order of the day through the REST API when it comes in,
as a merchant's system would (one batch for the orders known before the day, one call each for
the later ones)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from lastmile.demo.day import DayPlan, OrderPlan


def order_body(order: OrderPlan, day: date, zone: ZoneInfo) -> dict[str, object]:
    def at(hours: float) -> str:
        midnight = datetime.combine(day, datetime.min.time(), zone)
        return (midnight + timedelta(hours=hours)).isoformat()

    body: dict[str, object] = {
        "external_ref": order.ref,
        "customer_name": order.customer,
        "customer_phone": order.phone,
        "address": order.door.address,
        "lat": order.door.lat,
        "lon": order.door.lon,
        "weight_kg": order.weight_kg,
        "proof_required": "photo" if order.photo else "none",
        "time_windows": [{"start": at(order.window[0]), "end": at(order.window[1])}],
    }
    if order.pickup is not None and order.pickup_window is not None:
        body |= {"pickup_address": order.pickup.address, "pickup_lat": order.pickup.lat,
                 "pickup_lon": order.pickup.lon}  # fmt: skip
        start, end = order.pickup_window
        body["time_windows"].append({"start": at(start), "end": at(end), "stop": "pickup"})  # type: ignore[attr-defined]
    return body


class Shop:
    """The shop's system: sends each order through the REST API when it comes in."""

    def __init__(self, client: httpx.AsyncClient, day: DayPlan, midnight: datetime) -> None:
        self.client, self.day, self.midnight = client, day, midnight
        self.waiting = sorted(day.orders, key=lambda o: o.arrives)
        self.links: list[str] = []
        self.ids: dict[str, int] = {}

    async def send_due(self, now: datetime) -> None:
        due = [o for o in self.waiting if self.midnight + timedelta(hours=o.arrives) <= now]
        if not due:
            return
        self.waiting = self.waiting[len(due) :]
        zone = ZoneInfo(self.day.grid.timezone)
        bodies = [order_body(o, self.midnight.date(), zone) for o in due]
        if len(bodies) == 1:
            reply = await self.client.post("/api/v1/orders", json=bodies[0])
            reply.raise_for_status()
            made = [reply.json()]
        else:
            reply = await self.client.post("/api/v1/orders/batch", json={"orders": bodies})
            reply.raise_for_status()
            items = reply.json()["items"]
            if errors := [item for item in items if item["result"] == "error"]:
                raise RuntimeError(f"the shop's orders were refused: {errors}")
            made = [item["order"] for item in items]
        for order in made:
            self.ids[order["external_ref"]] = order["id"]
            if len(self.links) < 3:
                self.links.append(order["tracking_url"])
