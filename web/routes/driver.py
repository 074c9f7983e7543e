"""The driver's page (a Telegram Mini App, or a signed link in any browser): the page, its list
of stops, and its actions. The link's token in the address is the credential (no cookie); an
action must come from our own origin and carry the page's key in a header (another site can
neither read the key nor send such a header), and in a Mini App the initData."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.errors import DomainError
from core.texts import t
from core.webviews import driver, links
from core.webviews.driver import Page
from web.pages import NO_STORE, language, same_origin, status_of, templates

router = APIRouter(include_in_schema=False)
MAX_JSON = 10_000
KEY_HEADER = "x-page-key"
INIT_DATA_HEADER = "x-telegram-init-data"
OPS = ("arrive", "pickup", "deliver", "fail")


def _error(exc: DomainError, lang: str) -> JSONResponse:
    return JSONResponse({"error": exc.message(lang)}, status_of(exc), headers=NO_STORE)


@router.get("/driver/{token}", response_class=HTMLResponse)
async def driver_page(request: Request, token: str) -> Response:
    svc, lang = request.app.state.services, language(request)
    try:
        page = await driver.open_page(svc, token)
        stops = await driver.stop_rows(svc, page, lang)
    except DomainError as exc:
        gone = {"message": exc.message(lang)}
        return templates.TemplateResponse(
            request, "gone.html", gone, status_code=status_of(exc), headers=NO_STORE
        )
    words = {k: t(f"driverpage.{k}", lang) for k in driver.PAGE_WORDS}
    reasons = [(r, t(f"reason.{r}", lang)) for r in driver.FAIL_REASONS[:-1]]
    buttons = {
        "arrive": t("button.arrived", lang),
        "pickup": t("button.picked_up", lang),
        "deliver": t("button.delivered", lang),
        "fail": t("button.failed", lang),
    }
    context: dict[str, object] = {
        "lang": lang,
        "words": words,
        "buttons": buttons,
        "reasons": reasons,
        "stops": stops,
        "key": driver.form_key(svc, token),
        "mini_app": page.telegram_user_id is not None,
    }
    return templates.TemplateResponse(request, "driver_page.html", context, headers=NO_STORE)


@router.get("/driver/{token}/stops")
async def driver_stops(request: Request, token: str) -> Response:
    """Her stops again (the page refreshes them when she comes back to it)."""
    svc, lang = request.app.state.services, language(request)
    try:
        page = await driver.open_page(svc, token)
        stops = await driver.stop_rows(svc, page, lang)
    except DomainError as exc:
        return _error(exc, lang)
    return JSONResponse({"stops": stops}, headers=NO_STORE)


async def _body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None past `limit` bytes (however it is sent)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return None
    return bytes(raw)


async def _page(request: Request, token: str) -> Page:
    """The page an action is for, once its origin, key and (Mini App) initData hold."""
    if not same_origin(request):
        raise links.BadLink("webapp.bad")
    svc = request.app.state.services
    page = await driver.open_page(svc, token)
    key = request.headers.get(KEY_HEADER, "")
    driver.check_action(svc, page, key, request.headers.get(INIT_DATA_HEADER, ""))
    return page


async def _json(request: Request) -> dict[str, Any]:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise DomainError("driverpage.bad_request")
    raw = await _body(request, MAX_JSON)
    try:
        body = json.loads(raw) if raw is not None else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DomainError("driverpage.bad_request")
    return body


async def _answer(request: Request, page: Page, message: str, **extra: object) -> JSONResponse:
    stops = await driver.stop_rows(request.app.state.services, page, language(request))
    return JSONResponse({"message": message, "stops": stops, **extra}, headers=NO_STORE)


@router.post("/driver/{token}/stops/{order_id}/photo")
async def driver_photo(request: Request, token: str, order_id: int) -> Response:
    svc, lang = request.app.state.services, language(request)
    try:
        page = await _page(request, token)
        if not request.headers.get("content-type", "").startswith("image/"):
            raise DomainError("proof.not_image")
        limit = int(svc.settings.telegram.max_photo_mb * 1_000_000)
        data = await _body(request, limit)
        if data is None:
            too_big = DomainError("proof.too_large", mb=round(limit / 1_000_000))
            return JSONResponse({"error": too_big.message(lang)}, 413, headers=NO_STORE)
        message = await driver.photo(svc, page, order_id, data, lang)
        return await _answer(request, page, message)
    except DomainError as exc:
        return _error(exc, lang)


@router.post("/driver/{token}/stops/{order_id}/sign")
async def driver_sign(request: Request, token: str, order_id: int) -> Response:
    svc, lang = request.app.state.services, language(request)
    try:
        page = await _page(request, token)
        url = await driver.sign_link(svc, page, order_id)
    except DomainError as exc:
        return _error(exc, lang)
    return JSONResponse({"url": url.removeprefix(svc.signer.base_url)}, headers=NO_STORE)


@router.post("/driver/{token}/stops/{order_id}/{op}")
async def driver_act(request: Request, token: str, order_id: int, op: str) -> Response:
    svc, lang = request.app.state.services, language(request)
    if op not in OPS:
        return JSONResponse({"error": t("denied.button", lang)}, 404, headers=NO_STORE)
    try:
        page = await _page(request, token)
        body = await _json(request)
        reason, pin = str(body.get("reason") or ""), str(body.get("pin") or "")
        message = await driver.act(svc, page, order_id, op, lang, reason=reason, pin=pin)
        return await _answer(request, page, message)
    except DomainError as exc:
        return _error(exc, lang)


@router.post("/driver/{token}/position")
async def driver_position(request: Request, token: str) -> Response:
    svc, lang = request.app.state.services, language(request)
    try:
        page = await _page(request, token)
        body = await _json(request)
        await driver.position(svc, page, body, first=body.get("first") is True)
    except DomainError as exc:
        return _error(exc, lang)
    return JSONResponse({"kept": True}, headers=NO_STORE)
