"""What the web app answers when a request cannot be served: always JSON, never a plain page."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from core.db import unavailable
from core.texts import t

RETRY_AFTER_S = 5


async def server_error(request: Request, exc: Exception) -> Response:
    """503 with `Retry-After` while the database cannot be reached; 500 for anything else.
    (Starlette logs the exception after this answer.)"""
    if unavailable(exc):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"detail": t("api.unavailable")}, status_code=503, headers=headers)
    return JSONResponse({"detail": t("api.server_error")}, status_code=500)
