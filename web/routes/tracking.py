"""The customer's tracking page: HTML, the same data as JSON, live updates by Server-Sent
Events, a QR code of the link, the proof photo and the rating form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from core.errors import DomainError, NotFound
from core.services import public
from core.services.invites import qr_png
from core.services.messages import tracking_link
from core.texts import t

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
KEEP_ALIVE_S = 15.0
NO_STORE = {"Cache-Control": "no-store"}


def _days(request: Request) -> float:
    return request.app.state.settings.tracking.page_days


async def _view(request: Request, token: str) -> public.TrackingView:
    return await public.tracking_view(request.app.state.db, token, keep_days=_days(request))


def _refusal(request: Request, exc: DomainError) -> Response:
    status = 410 if isinstance(exc, public.Expired) else 404
    lang = request.app.state.settings.app.language
    return templates.TemplateResponse(
        request, "gone.html", {"message": t(exc.key, lang)}, status_code=status, headers=NO_STORE
    )


@router.get("/t/{token}.json")
async def tracking_json(request: Request, token: str) -> JSONResponse:
    try:
        view = await _view(request, token)
    except public.Expired:
        raise HTTPException(410, "this tracking link has expired") from None
    except NotFound:
        raise HTTPException(404, "no such tracking link") from None
    return JSONResponse(view.as_json(), headers=NO_STORE)


@router.get("/t/{token}", response_class=HTMLResponse)
async def tracking_page(request: Request, token: str) -> Response:
    try:
        view = await _view(request, token)
    except DomainError as exc:
        return _refusal(request, exc)
    settings = request.app.state.settings
    context = {
        "token": token,
        "view": view,
        "data": json.dumps(view.as_json()),
        "tracking": settings.tracking,
        "lang": settings.app.language,
        "labels": json.dumps(
            {step: t(f"page.step.{step}", settings.app.language) for step in public.STEPS}
        ),
        "t": t,
    }
    return templates.TemplateResponse(request, "tracking.html", context, headers=NO_STORE)


@router.get("/t/{token}/events")
async def tracking_events(request: Request, token: str) -> StreamingResponse:
    db, feed = request.app.state.db, request.app.state.live
    try:
        order = await public.order_by_token(
            db, token, keep_days=_days(request), now=public.utcnow()
        )
    except DomainError:
        raise HTTPException(404, "no such tracking link") from None
    assert order.id is not None

    async def stream() -> AsyncIterator[str]:
        async with feed.watch(order.id) as changes:
            yield "retry: 2000\n\n"
            view = await _view(request, token)
            yield f"data: {json.dumps(view.as_json())}\n\n"
            while not await request.is_disconnected():
                try:
                    await asyncio.wait_for(changes.get(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                view = await _view(request, token)
                yield f"data: {json.dumps(view.as_json())}\n\n"
                if view.final:
                    return

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
    try:
        path = await public.proof_photo_path(request.app.state.db, token, keep_days=_days(request))
    except DomainError:
        raise HTTPException(404) from None
    full = Path(request.app.state.settings.app.data_dir) / path if path else None
    if full is None or not full.is_file():
        raise HTTPException(404)
    return FileResponse(full, headers={"Cache-Control": "private, max-age=3600"})


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
