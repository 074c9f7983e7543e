"""How large a request body may be, per path, and the middleware that holds bodies to it."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.texts import t

KB = 1024
BODY_LIMITS: tuple[tuple[str, int], ...] = (  # the first path prefix that fits
    ("/api/v1/orders/batch", 4096 * KB),  # 500 orders with long notes
    ("/api/v1/", 64 * KB),
    ("/webhooks/", 1024 * KB),  # a Telegram update
    ("/t/", 16 * KB),  # the rating form
    ("/sandbox/", 11 * 1024 * KB),  # a proof photo uploaded as a participant (10 MB)
)
DEFAULT_LIMIT = 64 * KB
CLOSE = {"Connection": "close"}  # the rest of the body is not read: the connection cannot go on


def limit_of(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), DEFAULT_LIMIT)


class TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413)
        self.limit = limit


async def too_large(request: Request, exc: Exception) -> Response:
    """413, as JSON; the connection closes rather than the rest of the body being read."""
    limit = exc.limit if isinstance(exc, TooLarge) else limit_of(request.url.path)
    detail = t("api.too_large", limit=f"{limit // KB} KB")
    return JSONResponse({"detail": detail}, status_code=413, headers=CLOSE)


class BodyLimit:
    """Counts a request's body as it arrives and refuses it past its path's limit: a larger
    `Content-Length` at once, a chunked body as soon as it passes the limit. (FastAPI's own
    `max_body_size` answers an announced size in plain text and keeps reading the body.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = limit_of(scope["path"])
        announced = Headers(scope=scope).get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            return await (await too_large(Request(scope), TooLarge(limit)))(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise TooLarge(limit)  # a route reading its body answers 413 (`too_large`)
            return message

        await self.app(scope, counted, send)
