"""The REST API for merchant systems, `/api/v1`, behind API keys: orders, drivers, webhooks."""

from __future__ import annotations

from fastapi import APIRouter

from web.routes.api import drivers, orders, webhooks
from web.routes.api.common import PROBLEMS, invalid_request

router = APIRouter(prefix="/api/v1", responses=PROBLEMS)
router.include_router(orders.router)
router.include_router(drivers.router)
router.include_router(webhooks.router)

__all__ = ["invalid_request", "router"]
