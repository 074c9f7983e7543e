"""The signature pad (a Telegram Mini App, or a signed link in any browser): the page, and its
submit. The link's token in the address is the only credential (no cookie), and a submit must
be JSON from our own origin, so another site cannot post one (CSRF)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.errors import DomainError
from core.texts import t
from core.webviews import pad
from web.pages import NO_STORE, language, same_origin, status_of, templates

router = APIRouter(include_in_schema=False)
MAX_BODY = 1_000_000


@router.get("/sign/{token}", response_class=HTMLResponse)
async def pad_page(request: Request, token: str) -> Response:
    lang = language(request)
    try:
        view = await pad.view(request.app.state.services, token)
    except DomainError as exc:
        return templates.TemplateResponse(
            request,
            "gone.html",
            {"message": exc.message(lang)},
            status_code=status_of(exc),
            headers=NO_STORE,
        )
    words = {k: t(f"pad.{k}", lang, ref=view.ref) for k in pad.PAGE_WORDS}
    context: dict[str, object] = {"view": view, "words": words, "lang": lang}
    return templates.TemplateResponse(request, "sign.html", context, headers=NO_STORE)


@router.post("/sign/{token}")
async def pad_submit(request: Request, token: str) -> Response:
    lang = language(request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse({"error": t("sign.bad_drawing", lang)}, 415, headers=NO_STORE)
    if not same_origin(request):
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
        return JSONResponse({"error": exc.message(lang)}, status_of(exc), headers=NO_STORE)
    done = {"proof": proof.id, "sha256": proof.sha256, "message": t("pad.done", lang)}
    return JSONResponse(done, headers=NO_STORE)
