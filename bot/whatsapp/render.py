"""A core `Reply` as WhatsApp message bodies, ready for `GraphClient.send` (each with "to").

WhatsApp's rules (Cloud API v23) are kept here, so Graph never refuses a body we made:
- a text message's body is at most 4,096 characters; a longer text goes as several messages,
  cut at a paragraph, line or word boundary;
- reply buttons: at most 3, titles at most 20 characters and distinct, a body of at most 1,024;
- a list: at most 10 rows, row titles at most 24 characters (a longer label is shortened and
  given in full as the row's description, at most 72), the list's button at most 20, a body of
  at most 4,096;
- a caption (image, document) at most 1,024; a location request's body at most 1,024.
When a text does not fit an interactive body or a caption, its beginning goes first as text
messages and only the end rides on the buttons or the file: nothing is cut away but a label.

A file is uploaded first (`GraphClient.upload`) and sent by its media id: a photo or a QR code
as an image (JPEG or PNG; any other picture goes as a document), anything else as a document.
A photo whose file is gone is left out (the words still go); a document that is gone raises
`MissingFile`. A link's address is written out in the text (WhatsApp makes it tappable).
WhatsApp cannot edit a message: an `edit` reply is a new message."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from bot.whatsapp.client import GraphClient
from core.conversations.replies import Button, OutFile, Reply
from core.notify.messages import stored
from core.storage import Files
from core.texts import t

TEXT_MAX = 4096
BODY_MAX = 1024  # interactive bodies and captions
BUTTON_TITLE_MAX = 20
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
BUTTON_ID_MAX = 256
IMAGE_TYPES = ("image/jpeg", "image/png")
ELLIPSIS = "…"


class MissingFile(Exception):
    """A reply names a file that is not under APP_DATA_DIR."""


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: whole words where it can, then an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + ELLIPSIS


def split(text: str, limit: int, last: int | None = None) -> list[str]:
    """`text` in pieces of at most `limit` characters (the last piece at most `last`), cut at a
    paragraph, else a line, else a word, else anywhere. Nothing is lost but edge whitespace."""
    last = limit if last is None else last
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > last:
        cut = _cut_at(rest, min(limit, len(rest) - 1))
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [piece for piece in pieces if piece] or [""]


def _cut_at(text: str, room: int) -> int:
    for mark in ("\n\n", "\n", " "):
        at = text.rfind(mark, 0, room + 1)
        if at >= room // 3:
            return at if at > 0 else room
    return room


def _titles(labels: list[str], limit: int) -> list[str]:
    """Labels shortened to `limit`, made distinct (WhatsApp refuses two equal titles)."""
    titles: list[str] = []
    for label in labels:
        title = shorten(label, limit) or "·"
        number = 2
        while title in titles:
            suffix = f" {number}"
            title = shorten(label, limit - len(suffix)) + suffix
            number += 1
        titles.append(title)
    return titles


def text_message(to: str, body: str) -> dict[str, Any]:
    return {
        "to": to,
        "recipient_type": "individual",
        "type": "text",
        "text": {"body": body, "preview_url": "http://" in body or "https://" in body},
    }


def _interactive(to: str, interactive: dict[str, Any]) -> dict[str, Any]:
    return {
        "to": to,
        "recipient_type": "individual",
        "type": "interactive",
        "interactive": interactive,
    }


def buttons_message(to: str, body: str, buttons: tuple[Button, ...]) -> dict[str, Any]:
    titles = _titles([b.label for b in buttons], BUTTON_TITLE_MAX)
    return _interactive(
        to,
        {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": b.data[:BUTTON_ID_MAX], "title": title}}
                    for b, title in zip(buttons, titles, strict=True)
                ]
            },
        },
    )


def list_message(to: str, body: str, rows: tuple[Button, ...], label: str) -> dict[str, Any]:
    titles = _titles([b.label for b in rows], ROW_TITLE_MAX)
    items: list[dict[str, Any]] = []
    for row, title in zip(rows, titles, strict=True):
        item = {"id": row.data[:ROW_ID_MAX], "title": title}
        if title != " ".join(row.label.split()):
            item["description"] = shorten(row.label, ROW_DESCRIPTION_MAX)
        items.append(item)
    return _interactive(
        to,
        {
            "type": "list",
            "body": {"text": body},
            "action": {"button": shorten(label, BUTTON_TITLE_MAX), "sections": [{"rows": items}]},
        },
    )


def location_request(to: str, body: str) -> dict[str, Any]:
    return _interactive(
        to,
        {
            "type": "location_request_message",
            "body": {"text": body},
            "action": {"name": "send_location"},
        },
    )


async def _file_bytes(file: OutFile, files: Files) -> tuple[bytes, str] | None:
    if file.content is not None:
        return file.content, file.name
    content = await stored(files, file.path) if file.path is not None else None
    if content is None:
        if file.kind == "document":
            raise MissingFile(f"file missing: {file.path}")
        return None  # a photo that is gone: the words still go
    return content, Path(file.path or file.name).name


async def file_message(
    file: OutFile, to: str, caption: str, client: GraphClient, files: Files
) -> dict[str, Any] | None:
    """Upload the file and the message that shows it (None: a photo that is gone)."""
    found = await _file_bytes(file, files)
    if found is None:
        return None
    content, name = found
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if file.kind == "qr" and mime not in IMAGE_TYPES:
        mime = "image/png"
    kind = "image" if file.kind in ("photo", "qr") and mime in IMAGE_TYPES else "document"
    media: dict[str, Any] = {"id": await client.upload(content, mime, name)}
    if kind == "document":
        media["filename"] = name
    if caption:
        media["caption"] = caption
    return {"to": to, "recipient_type": "individual", "type": kind, kind: media}


async def messages(
    reply: Reply, to: str, client: GraphClient, files: Files, lang: str = "en"
) -> list[dict[str, Any]]:
    """One core reply as the WhatsApp messages to send, in order."""
    text = reply.text.strip()
    if reply.link is not None:
        text = f"{text}\n\n{reply.link.label}: {reply.link.url}".strip()
    interactive = bool(reply.buttons or reply.choices or reply.ask_location)
    out: list[dict[str, Any]] = []
    if reply.file is not None:
        caption = "" if interactive or len(text) > BODY_MAX else text
        shown = await file_message(reply.file, to, caption, client, files)
        if shown is not None:
            out.append(shown)
            if caption:
                return out
    if not interactive:
        return out + [text_message(to, piece) for piece in split(text, TEXT_MAX) if piece]
    if reply.buttons:
        *before, body = split(text or "·", TEXT_MAX, BODY_MAX)
        out += [text_message(to, piece) for piece in before]
        out.append(buttons_message(to, body, reply.buttons))
        text = ""
    elif reply.choices is not None:
        *before, body = split(text or reply.choices.title or "·", TEXT_MAX)
        out += [text_message(to, piece) for piece in before]
        label = reply.choices.title or t("button.choose", lang)
        out.append(list_message(to, body, reply.choices.rows, label))
        text = ""
    if reply.ask_location:
        *before, body = split(text or t("button.share_location", lang), TEXT_MAX, BODY_MAX)
        out += [text_message(to, piece) for piece in before]
        out.append(location_request(to, body))
    return out
