"""Our own tolerant parser of WhatsApp Cloud API webhook bodies (not pywa: see DESIGN.md).

`parse(body)` reads every entry, every change, every message and every status of a (possibly
batched) body and never raises: a part it cannot read is counted in `Batch.skipped` and logged by
the caller, the rest is kept. People are keyed by `wa_id` and by the business-scoped `user_id`
(BSUID); either may be missing (with usernames `wa_id` may be ""), and statuses may come without
contacts. A message of a type we do not know (or `unsupported`) is kept with kind "unknown", so
the channel answers it with help instead of dropping it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal[
    "text",
    "press",  # a reply button, a list row or a template's quick-reply button
    "location",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "contacts",
    "reaction",
    "order",
    "system",
    "edit",
    "revoke",
    "unknown",
]
MEDIA = ("image", "document", "audio", "video", "sticker")
MAX_TEXT = 65_536  # far above WhatsApp's 4,096 characters: anything longer is cut


@dataclass(frozen=True)
class Message:
    """One message a person sent us."""

    id: str
    kind: Kind
    type: str  # the type as WhatsApp named it ("interactive", "button", "pool", …)
    wa_id: str  # "" when WhatsApp gave none
    user_id: str | None  # the business-scoped user id (BSUID), when given
    name: str  # the person's profile name ("" when unknown)
    at: datetime | None
    phone_number_id: str = ""  # our number the message was sent to
    text: str = ""  # text body, a media caption, a button's title
    data: str | None = None  # a button's or list row's id, a quick reply's payload
    lat: float | None = None
    lon: float | None = None
    media_id: str | None = None
    mime_type: str | None = None
    filename: str = ""
    phones: tuple[str, ...] = ()  # shared contacts' numbers
    error_code: int | None = None  # an unsupported message's error
    new_wa_id: str = ""  # a system message "user_changed_number": the person's new number

    @property
    def sender(self) -> str:
        """Who wrote: the phone-based `wa_id`, else the BSUID ("" if neither came)."""
        return self.wa_id or self.user_id or ""


@dataclass(frozen=True)
class Status:
    """A delivery status of a message we sent."""

    id: str
    status: str  # sent, delivered, read, played, failed, …
    recipient: str  # the recipient's wa_id ("" when not given)
    user_id: str | None
    at: datetime | None
    error_code: int | None = None
    error_title: str | None = None


@dataclass(frozen=True)
class Batch:
    messages: tuple[Message, ...] = ()
    statuses: tuple[Status, ...] = ()
    skipped: int = 0  # parts that could not be read (or are not about messages)
    readable: bool = True  # False: the body is not a JSON object at all


def parse(body: bytes | str | Any) -> Batch:
    """Everything in a webhook body (raw bytes, text or already decoded JSON)."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return Batch(readable=False)
    if not isinstance(body, dict):
        return Batch(readable=False)
    messages: list[Message] = []
    statuses: list[Status] = []
    skipped = 0
    for entry in _list(body.get("entry")):
        if not isinstance(entry, dict):
            skipped += 1
            continue
        for change in _list(entry.get("changes")):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field", "messages") != "messages":
                skipped += 1
                continue
            found, missed = _change(value)
            messages += [m for m in found if isinstance(m, Message)]
            statuses += [s for s in found if isinstance(s, Status)]
            skipped += missed
    return Batch(tuple(messages), tuple(statuses), skipped)


def _change(value: dict[str, Any]) -> tuple[list[Message | Status], int]:
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
    metadata = value.get("metadata")
    number_id = _str(metadata.get("phone_number_id")) if isinstance(metadata, dict) else ""
    found: list[Message | Status] = []
    missed = 0
    for raw in _list(value.get("messages")):
        message = _message(raw, contacts, number_id) if isinstance(raw, dict) else None
        if message is None:
            missed += 1
        else:
            found.append(message)
    for raw in _list(value.get("statuses")):
        status = _status(raw, contacts) if isinstance(raw, dict) else None
        if status is None:
            missed += 1
        else:
            found.append(status)
    return found, missed


def _contact_for(contacts: list[dict[str, Any]], wa_id: str, user_id: str | None) -> dict[str, Any]:
    for contact in contacts:
        if (wa_id and _str(contact.get("wa_id")) == wa_id) or (
            user_id and _str(contact.get("user_id")) == user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _message(raw: dict[str, Any], contacts: list[dict[str, Any]], number_id: str) -> Message | None:
    message_id = _str(raw.get("id"))
    if not message_id:
        return None
    wa_id = _str(raw.get("from"))
    user_id = _str(raw.get("from_user_id")) or None
    contact = _contact_for(contacts, wa_id, user_id)
    wa_id = wa_id or _str(contact.get("wa_id"))
    user_id = user_id or _str(contact.get("user_id")) or None
    if not wa_id and not user_id:
        return None  # nobody to answer
    profile = contact.get("profile")
    name = _str(profile.get("name")) if isinstance(profile, dict) else ""
    kind_type = _str(raw.get("type")) or "unknown"
    base: dict[str, Any] = {
        "id": message_id,
        "type": kind_type,
        "wa_id": wa_id,
        "user_id": user_id,
        "name": name[:200],
        "at": _time(raw.get("timestamp")),
        "phone_number_id": number_id,
    }
    errors = _list(raw.get("errors"))
    if errors and isinstance(errors[0], dict):
        base["error_code"] = _int(errors[0].get("code"))
    return Message(**base, **_content(kind_type, raw))


def _content(kind_type: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The kind of a message and what it carries."""
    part = raw.get(kind_type)
    part = part if isinstance(part, dict) else {}
    if kind_type == "text" and "body" in part:
        return {"kind": "text", "text": _str(part.get("body"))}
    if kind_type == "button":  # a template's quick-reply button
        payload = _str(part.get("payload")) or _str(part.get("text"))
        return {"kind": "press", "data": payload, "text": _str(part.get("text"))}
    if kind_type == "interactive":
        reply_type = _str(part.get("type"))
        reply = part.get(reply_type)
        reply_id = _str(reply.get("id")) if isinstance(reply, dict) else ""
        if reply_type in ("button_reply", "list_reply") and reply_id and isinstance(reply, dict):
            return {"kind": "press", "data": reply_id, "text": _str(reply.get("title"))}
        return {"kind": "unknown"}
    if kind_type == "location":
        lat, lon = _float(part.get("latitude")), _float(part.get("longitude"))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return {"kind": "unknown"}
        return {"kind": "location", "lat": lat, "lon": lon, "text": _str(part.get("name"))}
    if kind_type in MEDIA:
        if not (media_id := _str(part.get("id"))):
            return {"kind": "unknown"}
        return {
            "kind": kind_type,
            "media_id": media_id,
            "mime_type": _str(part.get("mime_type")) or None,
            "filename": _str(part.get("filename"))[:200],
            "text": _str(part.get("caption")),
        }
    if kind_type == "contacts":
        phones = tuple(
            _str(phone.get("phone")) or _str(phone.get("wa_id"))
            for contact in _list(raw.get("contacts"))
            if isinstance(contact, dict)
            for phone in _list(contact.get("phones"))
            if isinstance(phone, dict) and (phone.get("phone") or phone.get("wa_id"))
        )
        return {"kind": "contacts", "phones": phones} if phones else {"kind": "unknown"}
    if kind_type == "reaction":
        return {"kind": "reaction", "text": _str(part.get("emoji"))}
    if kind_type == "order":
        return {"kind": "order", "text": _str(part.get("text"))}
    if kind_type == "system":
        return {
            "kind": "system",
            "text": _str(part.get("body")),
            "data": _str(part.get("type")) or None,
            "new_wa_id": _str(part.get("wa_id")),
        }
    if kind_type in ("edit", "revoke"):
        return {"kind": kind_type}
    return {"kind": "unknown"}


def _status(raw: dict[str, Any], contacts: list[dict[str, Any]]) -> Status | None:
    status_id, status = _str(raw.get("id")), _str(raw.get("status")).lower()
    if not status_id or not status:
        return None
    recipient = _str(raw.get("recipient_id"))
    user_id = _str(raw.get("recipient_user_id")) or None
    if user_id is None and contacts:
        user_id = _str(_contact_for(contacts, recipient, None).get("user_id")) or None
    code, title = None, None
    errors = _list(raw.get("errors"))
    if errors and isinstance(errors[0], dict):
        code = _int(errors[0].get("code"))
        title = (_str(errors[0].get("title")) or _str(errors[0].get("message")))[:500] or None
    return Status(status_id, status, recipient, user_id, _time(raw.get("timestamp")), code, title)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and 0 < len(value) <= 20 and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _time(value: Any) -> datetime | None:
    """A Unix timestamp in seconds (WhatsApp sends it as a string)."""
    seconds = _int(value) if not isinstance(value, float) else int(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
