"""Chat webhooks. Telegram's carries the secret we gave it in a header; anything else is 401.

Telegram sends an update again while we answer it with anything but 2xx: a body that is no
update answers 400 (nothing processed), an update that could not be processed now (the database
is unreachable) 503, so it comes again; 200 means processed (or a repeat)."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
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
