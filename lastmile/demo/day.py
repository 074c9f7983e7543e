"""The demo's day, drawn from a seed (the same seed, the same day): drivers with their vehicles
and shifts, orders with their doors, time windows and the time the shop sends them in, a few
pickup→delivery jobs, and who will not be home. Pure data: nothing here touches the service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

import numpy as np

from core.models import VehicleType
from lastmile.demo.city import Grid, Place

V = VehicleType
DRIVERS = (  # name, vehicle, capacity kg, working hours (local)
    ("Ana García", V.VAN, 600.0, (8.0, 14.0)),
    ("Bruno Martí", V.SCOOTER, 40.0, (8.0, 13.0)),
    ("Carla Puig", V.CAR, 250.0, (9.0, 14.5)),
    ("Dani Soler", V.BICYCLE, 20.0, (8.5, 12.5)),
    ("Elena Vidal", V.CAR, 250.0, (9.5, 14.5)),
    ("Farid Haddad", V.VAN, 600.0, (10.0, 14.5)),
)
FIRST = (
    "Laia",
    "Jordi",
    "Marta",
    "Pau",
    "Núria",
    "Oriol",
    "Sara",
    "Marc",
    "Júlia",
    "Arnau",
    "Clara",
    "Pol",
    "Aina",
    "Biel",
    "Emma",
    "Hugo",
    "Irene",
    "Joan",
    "Lucía",
    "Max",
)
LAST = ("Ferrer", "Serra", "Vila", "Costa", "Roca", "Font", "Riera", "Pons", "Mas", "Camps",
        "Bosch", "Sala", "Prat", "Rius", "Casals")  # fmt: skip
SLOT_HOURS = ((9, 11), (10, 12), (11, 13), (12, 14))  # delivery windows (local hours)
KNOWN_AT = 7.0  # orders sent before the day starts arrive at 07:00
PICKUP_SHARE = 1 / 16  # pickup→delivery jobs among the orders
LATE_SHARE = 0.3  # orders that arrive during the day
LAST_ARRIVAL = 12.0  # local hour: the shop's last order of the day
AWAY_SHARE = 0.05  # customers not at home at the first attempt (at least one)
NO_PROOF_SHARE = 0.25  # orders that need no proof photo


@dataclass(frozen=True)
class DriverPlan:
    key: str  # her sandbox chat
    name: str
    vehicle: VehicleType
    capacity_kg: float
    starts: float  # local hour
    ends: float


@dataclass(frozen=True)
class OrderPlan:
    ref: str
    customer: str
    customer_key: str  # the customer's sandbox chat
    phone: str
    door: Place
    window: tuple[float, float]  # local hours
    arrives: float  # local hour the shop sends it
    weight_kg: float
    photo: bool  # a proof photo is required
    away: bool  # nobody home at the first attempt
    pickup: Place | None = None  # a pickup→delivery job: collect here first
    pickup_window: tuple[float, float] | None = None


@dataclass(frozen=True)
class DayPlan:
    grid: Grid
    depot: Place
    drivers: tuple[DriverPlan, ...]
    orders: tuple[OrderPlan, ...]


def hour(value: float) -> time:
    minutes = round(value * 60)
    return time(minutes // 60, minutes % 60)


def plan_day(grid: Grid, n_orders: int, n_drivers: int, seed: int) -> DayPlan:
    rng = np.random.default_rng(seed)
    drivers = tuple(
        DriverPlan(f"driver-{k + 1}", name, vehicle, capacity, starts, ends)
        for k, (name, vehicle, capacity, (starts, ends)) in enumerate(
            DRIVERS[k % len(DRIVERS)] for k in range(n_drivers)
        )
    )
    first_start = min(d.starts for d in drivers)
    away = set(rng.choice(n_orders, max(1, round(n_orders * AWAY_SHARE)), replace=False).tolist())
    orders = []
    pickups = max(1, round(n_orders * PICKUP_SHARE)) if n_orders >= 8 else 0
    for k in range(n_orders):
        late = rng.random() < LATE_SHARE
        arrives = float(rng.uniform(first_start, LAST_ARRIVAL)) if late else KNOWN_AT
        slots = [s for s in SLOT_HOURS if s[0] >= max(arrives + 1.0, first_start + 1.0)]
        window = slots[int(rng.integers(0, len(slots)))] if slots else SLOT_HOURS[-1]
        name = f"{FIRST[int(rng.integers(0, len(FIRST)))]} {LAST[int(rng.integers(0, len(LAST)))]}"
        number = int(rng.integers(10_000_000, 99_999_999))
        pickup = grid.somewhere(rng) if k < pickups else None
        orders.append(
            OrderPlan(
                ref=f"BCN-{1001 + k}",
                customer=name,
                customer_key=f"customer-{1001 + k}",
                phone=f"{grid.phone_prefix}{number}",
                door=grid.somewhere(rng),
                window=(float(window[0]), float(window[1])),
                arrives=arrives,
                weight_kg=round(float(rng.uniform(0.5, 12.0)), 1),
                photo=rng.random() >= NO_PROOF_SHARE,
                away=k in away,
                pickup=pickup,
                pickup_window=(max(first_start, window[0] - 2.0), window[0] - 0.25)
                if pickup
                else None,
            )
        )
    depot = grid.crossing(*grid.depot)
    return DayPlan(grid, depot, drivers, tuple(orders))
