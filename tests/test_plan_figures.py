"""What the plan in force costs: paid hours, drive time, km and cost, hand-checked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.db import Database
from core.dispatch.plan_figures import plan_figures
from core.dispatch.planner import Planner
from core.merchants import apikeys
from core.routing.travel import StraightLine, TrafficProfile
from tests.conftest import serve
from tests.test_dispatch import DISPATCHER, NOW, on_shift, order_at
from web.app import create_app

START = (52.52, 13.40)
# 0.01° of latitude is 1,111.95 m: 1,112 m and, at 36 km/h, 111.2 s → 112 s (both rounded up)


@pytest.mark.parametrize(("hour", "leg_s"), [(9, 112), (7, 168)])  # 07:30: 1.5 × 112 s
async def test_the_figures_of_a_two_stop_plan_are_right(db: Database, hour: int, leg_s: int):
    now = NOW.replace(hour=hour, minute=30)
    traffic = TrafficProfile.parse("7-9:1.5")
    service = Planner(db, StraightLine(36, 1.0, traffic), clock=lambda: now)
    driver = await on_shift(
        db,
        "Wanda West",
        1,
        START,
        shift_started_at=now - timedelta(hours=1),
        last_seen_at=now - timedelta(minutes=1),
    )
    await order_at(db, "A", (START[0] + 0.01, START[1]), hours=(0, 23))
    await order_at(db, "B", (START[0] + 0.02, START[1]), hours=(0, 23))
    report = await service.dispatch_day(DISPATCHER)
    assert len(report.assigned) == 2
    world = await service.world(waiting=[])
    assert world.problem.traffic is not None  # free-flow times plus the profile
    assert world.problem.durations.tolist() == [[0, 112, 223], [112, 0, 112], [223, 112, 0]]

    plan = await plan_figures(service)
    total = plan.total
    # from her position: leg, 5 min service, leg, 5 min service (an open route ends there)
    paid = 2 * leg_s + 2 * 300
    assert (total.vans, total.stops, total.paid_s, total.drive_s, total.metres) == (
        1,
        2,
        paid,
        2 * leg_s,
        2 * 1112,
    )
    # 20/h is 556 units of 1/100,000 a second; 0.30/km is 30 a metre
    assert total.cost == round((556 * paid + 30 * 2224) / 100_000, 2)
    assert [(d.driver_id, d.name, d.figures) for d in plan.drivers] == [(driver.id, "Wanda", total)]
    assert (plan.cost_per_hour, plan.cost_per_km) == (20.0, 0.30)
    assert plan.at == now


async def test_the_api_gives_the_plan_per_driver_and_in_total(db: Database, tmp_path: Path):
    settings = Settings(
        app={"base_url": "https://deliver.example.com", "data_dir": tmp_path},
        routing={"speed_kmh": 36, "detour_factor": 1.0},
        dispatch={"mode": "manual"},  # the plan is made below, by hand: nothing before it
        _env_file=None,  # type: ignore[call-arg]
    )
    _, secret = await apikeys.create_key(db, "shop")
    driver = await on_shift(db, "Wanda West", 1, START)
    await order_at(db, "A", (START[0] + 0.01, START[1]), hours=(0, 23))
    await order_at(db, "B", (START[0] + 0.02, START[1]), hours=(0, 23))
    app = create_app(settings, db, clock=lambda: NOW)
    async with serve(app) as base, httpx.AsyncClient(base_url=f"{base}/api/v1") as client:
        assert (await client.get("/plan")).status_code == 401
        client.headers["Authorization"] = f"Bearer {secret}"
        empty = (await client.get("/plan")).json()
        assert empty["total"] == {"drivers": 0, "stops": 0, "paid_hours": 0.0,
                                  "drive_hours": 0.0, "km": 0.0, "cost": 0.0}  # fmt: skip
        assert empty["drivers"] == []
        report = await Planner(db, StraightLine(36, 1.0), clock=lambda: NOW).dispatch_day(
            DISPATCHER
        )
        assert len(report.assigned) == 2
        response = await client.get("/plan")
    assert response.status_code == 200
    body = response.json()
    # 2 legs of 112 s and 2 stops of 5 min: 824 s paid, 224 s driving, 2,224 m
    figures = {"drivers": 1, "stops": 2, "paid_hours": round(824 / 3600, 3),
               "drive_hours": round(224 / 3600, 3), "km": 2.224,
               "cost": round((556 * 824 + 30 * 2224) / 100_000, 2)}  # fmt: skip
    assert figures["cost"] == 5.25
    assert body == {
        "at": "2026-11-24T09:00:00Z",
        "cost_per_hour": 20.0,
        "cost_per_km": 0.3,
        "total": figures,
        "drivers": [{"id": driver.id, "first_name": "Wanda", **figures}],
    }
