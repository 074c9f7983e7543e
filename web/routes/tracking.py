"""The customer's tracking page: HTML, the same data as JSON, live updates by Server-Sent
Events, a QR code of the link, the proof photo and the rating form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from core.drivers import proofs
from core.errors import DomainError, NotFound
from core.notify.messages import tracking_link
from core.people.invites import deep_link, qr_png, whatsapp_link
from core.storage import StorageError
from core.texts import best_language, t
from core.tracking import public
from web.pages import templates

router = APIRouter(include_in_schema=False)
KEEP_ALIVE_S = 15.0
NO_STORE = {"Cache-Control": "no-store"}


def _days(request: Request) -> float:
    return request.app.state.settings.tracking.page_days


async def _view(request: Request, token: str) -> public.TrackingView:
    """A view read after this request arrived, shared with everyone who asked at the same time."""
    return await request.app.state.live.views.get(token, keep_days=_days(request))


def _language(request: Request, view: public.TrackingView | None = None) -> str:
    """The customer's language if we know it, else the browser's, else the shop's."""
    return best_language(
        view.language if view else None,
        accept=request.headers.get("accept-language"),
        default=request.app.state.settings.app.language,
    )


def _refusal(request: Request, exc: DomainError) -> Response:
    status = 410 if isinstance(exc, public.Expired) else 404
    lang = _language(request)
    return templates.TemplateResponse(
        request, "gone.html", {"message": t(exc.key, lang)}, status_code=status, headers=NO_STORE
    )


@router.get("/t/{token}.json")
async def tracking_json(request: Request, token: str) -> Response:
    try:
        view = await _view(request, token)
    except public.Expired:
        raise HTTPException(410, "this tracking link has expired") from None
    except NotFound:
        raise HTTPException(404, "no such tracking link") from None
    return Response(view.body, media_type="application/json", headers=NO_STORE)


@router.get("/t/{token}", response_class=HTMLResponse)
async def tracking_page(request: Request, token: str) -> Response:
    try:
        view = await _view(request, token)
    except DomainError as exc:
        return _refusal(request, exc)
    lang = _language(request, view)
    settings = request.app.state.settings
    username, number = settings.telegram.bot_username, settings.whatsapp.phone_number
    context = {
        "token": token,
        "view": view,
        # the tracking token is also the link that brings the order's updates to Telegram
        "subscribe": deep_link(username, token) if username and not view.final else None,
        # … or to WhatsApp (when WhatsApp runs)
        "subscribe_whatsapp": (
            whatsapp_link(number, token)
            if number and settings.whatsapp.enabled and not view.final
            else None
        ),
        "data": view.body.decode().replace("<", "\\u003c"),  # no "</script>" inside <script>
        "tracking": request.app.state.settings.tracking,
        "lang": lang,
        "labels": json.dumps({step: t(f"page.step.{step}", lang) for step in public.STEPS}),
        "t": t,
    }
    return templates.TemplateResponse(request, "tracking.html", context, headers=NO_STORE)


@router.get("/t/{token}/events")
async def tracking_events(request: Request, token: str) -> StreamingResponse:
    try:
        order_id = (await _view(request, token)).order_id
    except DomainError:
        raise HTTPException(404, "no such tracking link") from None

    async def stream() -> AsyncIterator[bytes]:
        async with request.app.state.live.watch(order_id) as changes:
            yield b"retry: 2000\n\n"
            view = await _view(request, token)  # read after the feed started watching
            yield b"data: " + view.body + b"\n\n"
            while not view.final and not await request.is_disconnected():
                try:
                    await asyncio.wait_for(changes.get(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                view = await _view(request, token)  # one read for all pages of the order
                yield b"data: " + view.body + b"\n\n"

    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/t/{token}/qr.png")
async def tracking_qr(request: Request, token: str) -> Response:
    try:
        await _view(request, token)
    except DomainError as exc:
        raise HTTPException(410 if isinstance(exc, public.Expired) else 404) from None
    link = tracking_link(request.app.state.settings, token)
    return Response(qr_png(link), media_type="image/png")


@router.get("/t/{token}/photo")
async def tracking_photo(request: Request, token: str) -> Response:
    return await _proof_file(request, token, signature=False)


@router.get("/t/{token}/signature.png")
async def tracking_signature(request: Request, token: str) -> Response:
    return await _proof_file(request, token, signature=True)


async def _proof_file(request: Request, token: str, *, signature: bool) -> Response:
    db, days = request.app.state.db, _days(request)
    try:
        proof = await public.proof_photo(db, token, keep_days=days, signature=signature)
    except DomainError:
        raise HTTPException(404) from None
    try:  # read through the storage (this instance's folder, or the shared object store)
        content = await proofs.stored_file(request.app.state.services.files, proof)
    except StorageError:
        raise HTTPException(503, headers={"Retry-After": "30"}) from None
    if proof is None or content is None:
        raise HTTPException(404)
    return Response(
        content,
        media_type=proof.content_type or "image/png",
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.post("/t/{token}/rating", response_class=HTMLResponse)
async def tracking_rating(
    request: Request,
    token: str,
    stars: Annotated[int, Form(ge=1, le=5)],
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        await public.rate_by_token(
            request.app.state.db, token, stars, comment, keep_days=_days(request)
        )
    except (NotFound, public.Expired) as exc:
        return _refusal(request, exc)
    except DomainError as exc:
        raise HTTPException(409, exc.message()) from None
    return Response(status_code=303, headers={"Location": f"/t/{token}"})
