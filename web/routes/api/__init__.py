"""The REST API for merchant systems, `/api/v1`, behind API keys: orders, drivers, the plan,
webhooks."""

from __future__ import annotations

from fastapi import APIRouter

from web.routes.api import drivers, orders, plan, webhooks
from web.routes.api.common import PREFIX, PROBLEMS, KeyFirst, invalid_request

router = APIRouter(prefix=PREFIX, responses=PROBLEMS)
router.include_router(orders.router)
router.include_router(drivers.router)
router.include_router(plan.router)
router.include_router(webhooks.router)

__all__ = ["KeyFirst", "invalid_request", "router"]
