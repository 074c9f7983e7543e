"""`/api/v1/plan`: what the plan in force costs from now on, per driver and in total."""

from __future__ import annotations

from fastapi import APIRouter

from core.dispatch.plan_figures import plan_figures
from core.routing.cost import Figures
from web.routes.api.common import Key, Svc
from web.routes.api.models import DriverPlanOut, PlanFiguresOut, PlanOut

router = APIRouter(tags=["plan"])


def _figures(figures: Figures) -> PlanFiguresOut:
    return PlanFiguresOut(
        drivers=figures.vans,
        stops=figures.stops,
        paid_hours=round(figures.paid_hours, 3),
        drive_hours=round(figures.drive_hours, 3),
        km=round(figures.km, 3),
        cost=figures.cost,
    )


@router.get(
    "/plan",
    summary="Today's plan and what it costs",
    description=(
        "Every on-shift driver's open stops in their planned order, timed from now: paid hours "
        "(leaving to returning, waits and breaks included), drive time, km and cost at the "
        "configured rates (ROUTING_COST_PER_HOUR, ROUTING_COST_PER_KM); per driver and in total."
    ),
)
async def get_plan(svc: Svc, key: Key) -> PlanOut:
    plan = await plan_figures(svc.planner)
    return PlanOut(
        at=plan.at,
        cost_per_hour=plan.cost_per_hour,
        cost_per_km=plan.cost_per_km,
        total=_figures(plan.total),
        drivers=[
            DriverPlanOut(id=d.driver_id, first_name=d.name, **_figures(d.figures).model_dump())
            for d in plan.drivers
        ],
    )
