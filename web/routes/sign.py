"""The signature pad (a Telegram Mini App, or a signed link in any browser): the page, and its
submit. The link's token in the address is the only credential (no cookie), and a submit must
be JSON from our own origin, so another site cannot post one (CSRF)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.errors import DomainError, NotFound
from core.texts import t
from core.webviews import initdata, links, pad
from web.pages import templates

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_BODY = 1_000_000
STATUS = {
    links.BadLink: 403,
    links.LinkExpired: 410,
    links.LinkRevoked: 410,
    initdata.BadInitData: 403,
    initdata.InitDataExpired: 401,
    initdata.InitDataReplayed: 409,
    NotFound: 404,
}


def _status(exc: DomainError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 422)


def _lang(request: Request) -> str:
    return str(request.app.state.settings.app.language)


@router.get("/sign/{token}", response_class=HTMLResponse)
async def pad_page(request: Request, token: str) -> Response:
    lang = _lang(request)
    try:
        view = await pad.view(request.app.state.services, token)
    except DomainError as exc:
        return templates.TemplateResponse(
            request,
            "gone.html",
            {"message": exc.message(lang)},
            status_code=_status(exc),
            headers=NO_STORE,
        )
    words = {k: t(f"pad.{k}", lang, ref=view.ref) for k in pad.PAGE_WORDS}
    context: dict[str, object] = {"view": view, "words": words, "lang": lang}
    return templates.TemplateResponse(request, "sign.html", context, headers=NO_STORE)


def _same_origin(request: Request) -> bool:
    """A browser names the page that posts: it must be ours (or the client is no browser)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in (None, "same-origin")
    ours = {str(request.base_url).rstrip("/"), str(request.app.state.settings.app.base_url)}
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" in {o.rstrip("/") for o in ours}


@router.post("/sign/{token}")
async def pad_submit(request: Request, token: str) -> Response:
    lang = _lang(request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse({"error": t("sign.bad_drawing", lang)}, 415, headers=NO_STORE)
    if not _same_origin(request):
        return JSONResponse({"error": t("webapp.bad", lang)}, 403, headers=NO_STORE)
    raw = bytearray()
    async for chunk in request.stream():  # read no more than MAX_BODY, however it is sent
        raw += chunk
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": t("sign.too_big", lang)}, 413, headers=NO_STORE)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": t("sign.bad_drawing", lang)}, 422, headers=NO_STORE)
    try:
        proof = await pad.submit(
            request.app.state.services,
            token,
            body.get("drawing"),
            str(body.get("name") or ""),
            str(body.get("key") or ""),
            str(body.get("init_data") or ""),
        )
    except DomainError as exc:
        return JSONResponse({"error": exc.message(lang)}, _status(exc), headers=NO_STORE)
    done = {"proof": proof.id, "sha256": proof.sha256, "message": t("pad.done", lang)}
    return JSONResponse(done, headers=NO_STORE)
