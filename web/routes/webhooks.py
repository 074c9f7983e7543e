"""Chat webhooks. Telegram's carries the secret we gave it in a header; WhatsApp's is signed
(`X-Hub-Signature-256`: HMAC-SHA256 of the raw body with the app secret); anything else is 401.

Telegram sends an update again while we answer it with anything but 2xx: a body that is no
update answers 400 (nothing processed), an update that could not be processed now (the database
is unreachable) 503, so it comes again; 200 means processed (or a repeat)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from bot.telegram.updates import Deferred

log = logging.getLogger(__name__)
router = APIRouter()


@router.post("/webhooks/telegram", include_in_schema=False)
async def telegram_update(
    request: Request,
    secret: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> dict[str, bool]:
    channel = getattr(request.app.state, "telegram", None)
    expected = request.app.state.settings.telegram.webhook_secret
    if channel is None or expected is None:
        raise HTTPException(404, "Telegram webhook is not enabled")
    if secret is None or not hmac.compare_digest(
        secret.encode(), expected.get_secret_value().encode()
    ):
        log.warning("Telegram webhook call with a wrong or missing secret from %s", request.client)
        raise HTTPException(401, "wrong secret token")
    try:
        update = json.loads(await request.body())
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise HTTPException(400, "the body is not a Telegram update")
    try:
        parsed = channel.parse(update)
    except ValidationError as exc:
        log.warning("Telegram webhook: an invalid update refused: %s", exc)
        raise HTTPException(400, "the body is not a valid Telegram update") from None
    try:
        await channel.process(parsed)
    except Deferred as exc:
        raise HTTPException(503, "the update could not be processed now; send it again") from exc
    return {"ok": True}


def _whatsapp(request: Request) -> Any:
    channel = getattr(request.app.state, "whatsapp", None)
    if channel is None:
        raise HTTPException(404, "WhatsApp webhook is not enabled")
    return channel


@router.get("/webhooks/whatsapp", include_in_schema=False)
async def whatsapp_handshake(
    request: Request,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=200)] = "",
) -> PlainTextResponse:
    """Meta's verification: the challenge back when the verify token is ours, else 403."""
    _whatsapp(request)
    expected = request.app.state.settings.whatsapp.verify_token
    if (
        mode != "subscribe"
        or expected is None
        or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode())
    ):
        log.warning("WhatsApp verification with a wrong token or mode from %s", request.client)
        raise HTTPException(403, "wrong verify token")
    return PlainTextResponse(challenge)


@router.post("/webhooks/whatsapp", include_in_schema=False)
async def whatsapp_update(
    request: Request,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> dict[str, bool]:
    """A signed body is stored, then answered 200 (processed after, once); 401 unsigned."""
    channel = _whatsapp(request)
    body = await request.body()
    secret = request.app.state.settings.whatsapp.app_secret
    if not signed(body, signature, secret.get_secret_value() if secret else ""):
        log.warning("WhatsApp webhook call with a bad or missing signature from %s", request.client)
        raise HTTPException(401, "bad signature")
    await channel.accept(body)  # a database outage answers 503 (web.errors): Meta sends it again
    return {"ok": True}


def signed(body: bytes, header: str | None, secret: str) -> bool:
    """Whether `header` is `sha256=<hex>` of HMAC-SHA256(secret, body) (constant time)."""
    if not header or not secret:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode(errors="replace"))
