"""The dispatcher's live board (a Telegram Mini App, or a signed link): the page, its live data
by Server-Sent Events, and its actions. The link's token in the address is the credential (no
cookie); an action must be JSON from our own origin carrying the page's action key, so another
site cannot post one (CSRF)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from core.errors import DomainError
from core.texts import t
from core.webviews import board
from web.pages import NO_STORE, language, same_origin, status_of, templates

router = APIRouter(include_in_schema=False)
KEEP_ALIVE_S = 15.0
MAX_BODY = 16_000
NOT_STAFF: dict[type[DomainError], int] = {board.NotStaff: 403}


def _reads(request: Request) -> tuple[board.Reads, board.Reads]:
    """The full board and the drivers' positions, each read once for every open board."""
    state = request.app.state
    if getattr(state, "board_reads", None) is None:
        svc = state.services
        zone = svc.settings.app.timezone
        state.board_reads = (
            board.Reads(lambda: _encoded(board.snapshot(svc.db, svc.clock(), zone), "board")),
            board.Reads(lambda: _encoded(_positions(svc), "positions")),
        )
    reads: tuple[board.Reads, board.Reads] = state.board_reads
    return reads


async def _positions(svc: Any) -> dict[str, Any]:
    return {"drivers": await board.positions(svc.db, svc.clock())}


async def _encoded(data: Any, kind: str) -> bytes:
    body = {"kind": kind, **(await data)}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


@router.get("/board/{token}", response_class=HTMLResponse)
async def board_page(request: Request, token: str) -> Response:
    lang = language(request)
    svc = request.app.state.services
    try:
        viewer = await board.open_board(svc, token)
    except DomainError as exc:
        return templates.TemplateResponse(
            request, "gone.html", {"message": exc.message(lang)},
            status_code=status_of(exc, NOT_STAFF), headers=NO_STORE,
        )  # fmt: skip
    words = {k: t(f"board.{k}", lang, minutes="{minutes}") for k in board.PAGE_WORDS}
    words.update({f"status.{s}": t(f"status.{s}", lang) for s in _STATUSES})
    context: dict[str, object] = {
        "lang": lang,
        "words": words,
        "title": words["title"],
        "csrf": board.csrf(svc.signer.key, token),
        "mini_app": viewer.telegram_user_id is not None,
        "tiles": request.app.state.settings.tracking.tiles_url,
        "map_js": request.app.state.settings.tracking.map_js_url,
        "map_css": request.app.state.settings.tracking.map_css_url,
    }
    return templates.TemplateResponse(request, "board.html", context, headers=NO_STORE)


_STATUSES = (
    "new", "assigned", "picked_up", "out_for_delivery", "arrived", "delivered", "failed",
    "rescheduled", "returned", "cancelled",
)  # fmt: skip


@router.get("/board/{token}/events")
async def board_events(request: Request, token: str) -> Response:
    svc = request.app.state.services
    try:
        await board.open_board(svc, token)
    except DomainError as exc:
        return JSONResponse(
            {"error": exc.message(language(request))}, status_of(exc, NOT_STAFF), headers=NO_STORE
        )
    full, moved = _reads(request)

    async def stream() -> AsyncIterator[bytes]:
        async with request.app.state.live.watch_all() as changes:
            yield b"retry: 2000\n\n"
            yield await full.get()  # read after the feed started watching
            while not await request.is_disconnected():
                kinds = await changes.wait(KEEP_ALIVE_S)
                if not kinds:
                    yield b": keep-alive\n\n"
                    continue
                try:  # a link revoked or a role taken away ends the stream
                    await board.open_board(svc, token)
                except DomainError:
                    return
                yield await (full.get() if "events" in kinds else moved.get())

    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _body(request: Request) -> dict[str, Any] | None:
    raw = bytearray()
    async for chunk in request.stream():  # read no more than MAX_BODY, however it is sent
        raw += chunk
        if len(raw) > MAX_BODY:
            return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@router.post("/board/{token}/{action}")
async def board_action(request: Request, token: str, action: str) -> Response:
    lang = language(request)
    if action not in ("assign", "cancel"):
        return JSONResponse({"error": t("board.bad_request", lang)}, 404, headers=NO_STORE)
    if not request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse({"error": t("board.bad_request", lang)}, 415, headers=NO_STORE)
    if not same_origin(request):
        return JSONResponse({"error": t("webapp.bad", lang)}, 403, headers=NO_STORE)
    svc = request.app.state.services
    try:
        viewer = await board.open_board(svc, token)
        board.check_csrf(svc.signer.key, token, request.headers.get("x-board-key", ""))
        body = await _body(request)
        if body is None:
            raise DomainError("board.bad_request")
        board.check_mini_app(svc, viewer, str(body.get("init_data") or ""))
        if action == "assign":
            ref, name = await board.assign(svc, viewer, body.get("order"), body.get("driver"))
            message = t("board.assigned", lang, ref=ref, driver=name)
        else:
            ref = await board.cancel(svc, viewer, body.get("order"))
            message = t("board.cancelled", lang, ref=ref)
    except DomainError as exc:
        return JSONResponse(
            {"error": exc.message(lang)}, status_of(exc, NOT_STAFF), headers=NO_STORE
        )
    return JSONResponse({"message": message}, headers=NO_STORE)
