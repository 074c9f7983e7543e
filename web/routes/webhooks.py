"""Chat webhooks. Telegram's carries the secret we gave it in a header; anything else is 401."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request

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
    await channel.feed(update)
    return {"ok": True}
