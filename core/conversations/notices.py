"""Outbox notices as neutral replies: the text, its actions as buttons (a rating as a list of
five stars) and its file. Every channel's sender renders the same `Reply`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.config import Settings
from core.conversations import buttons
from core.conversations.replies import MAX_BUTTONS, Button, Choices, OutFile, Reply
from core.db import Database
from core.models import OutboxMessage
from core.notify.messages import Rendered, render
from core.texts import t


def action_buttons(
    items: Sequence[Mapping[str, Any]], lang: str
) -> tuple[tuple[Button, ...], Choices | None]:
    """A notice's actions: buttons, or a list when there are more than fit (or a rating)."""
    rows: list[Button] = []
    for item in items:
        name, target = item["action"], int(item.get("order_id") or item.get("driver_id") or 0)
        if name == "customer.rate":
            stars = [Button(f"{n}★", buttons.Rate(target, n).pack()) for n in range(1, 6)]
            return (), Choices(tuple(stars), t("action.customer.rate", lang))
        rows.append(Button(t(f"action.{name}", lang), buttons.Act(name, target).pack()))
    if len(rows) > MAX_BUTTONS:
        return (), Choices(tuple(rows))
    return tuple(rows), None


def notice_reply(rendered: Rendered) -> Reply:
    row_buttons, choices = action_buttons(rendered.actions, rendered.language)
    file = None
    if rendered.document_path is not None:
        path = rendered.document_path
        file = OutFile("document", path.name, path=path)
    elif rendered.photo_file_id is not None or rendered.photo_path is not None:
        name = rendered.photo_path.name if rendered.photo_path else "photo.jpg"
        file = OutFile("photo", name, path=rendered.photo_path, file_ref=rendered.photo_file_id)
    return Reply(rendered.text, buttons=row_buttons, choices=choices, file=file)


async def render_notice(db: Database, row: OutboxMessage, settings: Settings) -> Reply:
    """An outbox row as the message every channel shows (files named relative to APP_DATA_DIR)."""
    return notice_reply(await render(db, row, settings))
