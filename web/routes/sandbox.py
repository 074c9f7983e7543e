"""The sandbox page: one column per sandbox participant with every message of her chat and its
buttons, updated by Server-Sent Events; a person can type, press buttons, drop a pin and upload a
photo there as that participant (bot.sandbox).

Off (404) unless SANDBOX=true or the demo runs; answers only loopback clients unless
SANDBOX_TOKEN is set and given (`?token=` or the `X-Sandbox-Token` header; compared in constant
time). Every refusal is JSON `{"detail": message}` and changes nothing."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from bot.sandbox.channel import SandboxChannel, UnknownParticipant, photo_upload
from bot.sandbox.chats import Shown
from core.conversations.events import Command, Event, Location, Press, Text
from core.drivers.proofs import check_image
from core.errors import DomainError
from core.texts import t

templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
KEEP_ALIVE_S = 15.0
TEXT_MAX = 4096  # Telegram's limit for one message
DATA_MAX = 64  # bytes of button data
PHOTO_MAX = 10_000_000
NO_STORE = {"Cache-Control": "no-store"}
LIVE_FOR = timedelta(hours=8)  # a live location shared from the page lasts this long


class Refused(HTTPException):
    def __init__(self, status: int, key: str, **params: object) -> None:
        super().__init__(status, t(key, **params))


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed(request: Request) -> SandboxChannel:
    """The sandbox, if it is on and this client may use it."""
    sandbox: SandboxChannel | None = getattr(request.app.state, "sandbox", None)
    if sandbox is None:
        raise Refused(404, "sandbox.off")
    if _loopback(request.client.host if request.client else None):
        return sandbox
    token = request.app.state.settings.sandbox_token
    given = request.headers.get("x-sandbox-token") or request.query_params.get("token") or ""
    if token is None or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Refused(403, "sandbox.not_loopback")
    return sandbox


Sandbox = Annotated[SandboxChannel, Depends(allowed)]
router = APIRouter(prefix="/sandbox", include_in_schema=False)


async def _answer(sandbox: SandboxChannel, key: str, event: Event) -> Response:
    try:
        replies = await sandbox.send(key, event)
    except UnknownParticipant as exc:
        raise HTTPException(404, exc.message()) from None
    return JSONResponse({"replies": [shown.public() for shown in replies]})


@router.get("", response_class=HTMLResponse)
async def sandbox_page(request: Request, sandbox: Sandbox) -> Response:
    chats = sandbox.chats
    columns = [(p, chats.messages(p.key)) for p in chats.participants.values()]
    context = {
        "columns": columns,
        "token": request.query_params.get("token", ""),
        "newest": max((m.id for _, messages in columns for m in messages), default=0),
        "t": t,
        "json": lambda shown: json.dumps(shown.public()).replace("<", "\\u003c"),
    }
    return templates.TemplateResponse(request, "sandbox.html", context, headers=NO_STORE)


@router.get("/chats.json")
async def sandbox_chats(sandbox: Sandbox) -> Response:
    chats = sandbox.chats
    body = {
        p.key: {
            "name": p.name,
            "role": p.role,
            "messages": [m.public() for m in chats.messages(p.key)],
        }
        for p in chats.participants.values()
    }
    return JSONResponse(body, headers=NO_STORE)


@router.get("/events")
async def sandbox_events(request: Request, sandbox: Sandbox, after: int = 0) -> StreamingResponse:
    """Every message added after message `after` (the newest the page was rendered with)."""
    chats = sandbox.chats

    def event(shown: Shown) -> bytes:
        who = chats.participants[shown.key]
        body = {**shown.public(), "name": who.name, "role": who.role}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def stream() -> AsyncIterator[bytes]:
        async with chats.follow() as queue:
            yield b"retry: 2000\n\n"
            missed = sorted((m for m in chats.everything() if m.id > after), key=lambda m: m.id)
            for shown in missed:  # added between the page's rendering and this stream
                yield event(shown)
            sent = missed[-1].id if missed else after
            while not await request.is_disconnected():
                try:
                    shown = await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if shown.id > sent:
                    yield event(shown)

    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post("/{key}/text")
async def sandbox_text(sandbox: Sandbox, key: str, text: Annotated[str, Form()] = "") -> Response:
    text = text.strip()
    if not text:
        raise Refused(422, "sandbox.empty_text")
    if len(text) > TEXT_MAX:
        raise Refused(422, "sandbox.text_too_long", limit=TEXT_MAX)
    if text.startswith("/") and len(text) > 1:
        name, _, args = text[1:].partition(" ")
        event: Event = Command(name.split("@")[0].lower(), args.strip())
    else:
        event = Text(text)
    return await _answer(sandbox, key, event)


@router.post("/{key}/press")
async def sandbox_press(sandbox: Sandbox, key: str, data: Annotated[str, Form()] = "") -> Response:
    if not data or len(data.encode()) > DATA_MAX:
        raise Refused(422, "sandbox.bad_button", limit=DATA_MAX)
    return await _answer(sandbox, key, Press(data))


@router.post("/{key}/location")
async def sandbox_location(
    sandbox: Sandbox,
    key: str,
    lat: Annotated[str, Form()] = "",
    lon: Annotated[str, Form()] = "",
    live: Annotated[bool, Form()] = False,
) -> Response:
    try:
        point = float(lat), float(lon)
    except ValueError:
        raise Refused(422, "sandbox.bad_location") from None
    if not all(map(math.isfinite, point)) or abs(point[0]) > 90 or abs(point[1]) > 180:
        raise Refused(422, "sandbox.bad_location")
    until = sandbox.services.clock() + LIVE_FOR if live else None
    return await _answer(sandbox, key, Location(*point, live=live, live_until=until))


@router.post("/{key}/photo")
async def sandbox_photo(
    sandbox: Sandbox,
    key: str,
    photo: Annotated[UploadFile, File()],
    caption: Annotated[str, Form()] = "",
) -> Response:
    content = await photo.read(PHOTO_MAX + 1)
    try:
        check_image(content, PHOTO_MAX)
    except DomainError as exc:
        raise HTTPException(422, exc.message()) from None
    if len(caption) > TEXT_MAX:
        raise Refused(422, "sandbox.text_too_long", limit=TEXT_MAX)
    name = Path(photo.filename or "photo").name[:100]
    return await _answer(sandbox, key, photo_upload(content, name, caption))


@router.get("/file/{message_id}")
async def sandbox_file(sandbox: Sandbox, message_id: int) -> Response:
    found = sandbox.chats.file(message_id)
    if found is None:
        raise Refused(404, "sandbox.no_file")
    if found.content is not None:
        kind = "image/png" if found.kind in ("photo", "qr") else "application/octet-stream"
        if found.name.lower().endswith((".jpg", ".jpeg")):
            kind = "image/jpeg"
        return Response(found.content, media_type=kind, headers=NO_STORE)
    if found.path is None or not found.path.is_file():
        raise Refused(404, "sandbox.no_file")
    return FileResponse(found.path, filename=found.name, headers=NO_STORE)
