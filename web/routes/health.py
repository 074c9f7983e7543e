"""`/healthz`: is the service up, and can it reach its database?"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from web.deps import DB

router = APIRouter()
log = logging.getLogger(__name__)
TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz(db: DB) -> JSONResponse:
    try:
        await asyncio.wait_for(db.ping(), TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database is "unhealthy", not a crash
        log.warning("health check: database unreachable: %s", exc)
        body = {"status": "unavailable", "database": f"error: {type(exc).__name__}"}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
