"""Builders of Telegram `Update` dicts, shaped like the real server's (see the examples in
`../shared/data/telegram/examples/`). Each builder returns a plain dict without `update_id`
(the fake assigns one when the update is pushed) unless `update_id=` is given.

    ana = user(111, "Ana")
    fake.push_update(command(ana, "/start", "inv_abc"))
    fake.push_update(location(ana, 52.52, 13.40, live_period=28800, message_id=12))
    fake.push_update(location(ana, 52.53, 13.41, live_period=28800, edit=True, message_id=12))
    fake.push_update(location(ana, 52.53, 13.41, edit=True, message_id=12))  # live stop
"""

from __future__ import annotations

import itertools
import time
from typing import Any

BOT_ID = 123456
BOT_USERNAME = "lastmile_test_bot"
BOT_FIRST_NAME = "Lastmile Test Bot"

_message_ids = itertools.count(1)
_callback_ids = itertools.count(4382719283749001)


def bot_user(id: int = BOT_ID, username: str = BOT_USERNAME) -> dict[str, Any]:
    """The bot as it appears in `from` of its own messages."""
    return {"id": id, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": username}


def user(
    id: int,
    first_name: str = "Ana",
    username: str | None = None,
    language_code: str | None = "en",
    *,
    last_name: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id, "is_bot": False, "first_name": first_name}
    if last_name is not None:
        out["last_name"] = last_name
    if username is not None:
        out["username"] = username
    if language_code is not None:
        out["language_code"] = language_code
    return out


def private_chat(person: dict[str, Any]) -> dict[str, Any]:
    """The private chat with `person` (a user dict), as the server describes it."""
    chat: dict[str, Any] = {"id": person["id"]}
    for key in ("first_name", "last_name", "username"):
        if key in person:
            chat[key] = person[key]
    chat["type"] = "private"
    return chat


def _chat(person: dict[str, Any], chat_id: int | None) -> dict[str, Any]:
    if chat_id is None or chat_id == person["id"]:
        return private_chat(person)
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "title": "Lastmile drivers", "type": kind}


def _update(kind: str, body: dict[str, Any], update_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {} if update_id is None else {"update_id": update_id}
    out[kind] = body
    return out


def _message_body(
    person: dict[str, Any],
    *,
    chat_id: int | None,
    message_id: int | None,
    date: int | None,
) -> dict[str, Any]:
    return {
        "message_id": next(_message_ids) if message_id is None else message_id,
        "from": person,
        "chat": _chat(person, chat_id),
        "date": int(time.time()) if date is None else date,
    }


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def message(
    person: dict[str, Any],
    text: str,
    *,
    chat_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A text message; a text starting with "/" gets its `bot_command` entity."""
    body = _message_body(person, chat_id=chat_id, message_id=message_id, date=date)
    body["text"] = text
    if text.startswith("/") and len(text) > 1:
        word = text.split(maxsplit=1)[0]
        body["entities"] = [{"offset": 0, "length": _utf16_len(word), "type": "bot_command"}]
    return _update("message", body, update_id)


def command(
    person: dict[str, Any], name: str, arg: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """`/name arg`, e.g. `command(ana, "/start", "inv_abc")` for a deep link."""
    text = name if name.startswith("/") else f"/{name}"
    if arg:
        text = f"{text} {arg}"
    return message(person, text, **kwargs)


def location(
    person: dict[str, Any],
    latitude: float,
    longitude: float,
    *,
    live_period: int | None = None,
    edit: bool = False,
    message_id: int | None = None,
    heading: int | None = None,
    horizontal_accuracy: float | None = None,
    date: int | None = None,
    edit_date: int | None = None,
    chat_id: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A location, following the real server's rules:

    - static pin: `message` without `live_period`;
    - live start: `message` with `live_period`;
    - live update: `edited_message` (same `message_id` as the start) with `live_period`,
      `edit_date` and optionally `heading`;
    - live stop: `edited_message` without `live_period` (and without `heading`).
    """
    if edit and message_id is None:
        raise ValueError("an edited live location needs the message_id of the live start")
    body = _message_body(person, chat_id=chat_id, message_id=message_id, date=date)
    if edit:
        body["edit_date"] = max(int(time.time()), body["date"]) if edit_date is None else edit_date
    loc: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if horizontal_accuracy is not None:
        loc["horizontal_accuracy"] = horizontal_accuracy
    if live_period is not None:
        loc["live_period"] = live_period
        if heading is not None:
            loc["heading"] = heading
    body["location"] = loc
    return _update("edited_message" if edit else "message", body, update_id)


def photo(
    person: dict[str, Any],
    file_id: str,
    file_unique_id: str,
    *,
    caption: str | None = None,
    width: int = 1280,
    height: int = 960,
    file_size: int | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A photo message. Like the real server, `photo` lists sizes smallest first: a 90 px
    thumbnail (ids derived from the given ones) and the given file as the largest size."""
    body = _message_body(person, chat_id=chat_id, message_id=message_id, date=date)
    if caption is not None:
        body["caption"] = caption
    scale = 90 / max(width, height)
    large: dict[str, Any] = {"file_id": file_id, "file_unique_id": file_unique_id}
    if file_size is not None:
        large["file_size"] = file_size
    large |= {"width": width, "height": height}
    body["photo"] = [
        {
            "file_id": f"{file_id}-thumb",
            "file_unique_id": f"{file_unique_id}-thumb",
            "file_size": 1311,
            "width": max(1, round(width * scale)),
            "height": max(1, round(height * scale)),
        },
        large,
    ]
    return _update("message", body, update_id)


def document(
    person: dict[str, Any],
    file_id: str,
    file_unique_id: str,
    file_name: str,
    mime_type: str,
    *,
    file_size: int | None = None,
    caption: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    body = _message_body(person, chat_id=chat_id, message_id=message_id, date=date)
    doc: dict[str, Any] = {
        "file_name": file_name,
        "mime_type": mime_type,
        "file_id": file_id,
        "file_unique_id": file_unique_id,
    }
    if file_size is not None:
        doc["file_size"] = file_size
    body["document"] = doc
    if caption is not None:
        body["caption"] = caption
    return _update("message", body, update_id)


def contact(
    person: dict[str, Any],
    phone: str,
    *,
    own: bool = True,
    first_name: str | None = None,
    last_name: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A shared contact. `own=True` (the "share my phone number" button) gives the sender's
    own contact with `user_id`; `own=False` a contact of someone else, without `user_id`."""
    body = _message_body(person, chat_id=chat_id, message_id=message_id, date=date)
    card: dict[str, Any] = {"phone_number": phone}
    card["first_name"] = first_name or (person["first_name"] if own else "Contact")
    last = last_name if last_name is not None else (person.get("last_name") if own else None)
    if last is not None:
        card["last_name"] = last
    if own:
        card["user_id"] = person["id"]
    body["contact"] = card
    return _update("message", body, update_id)


def callback(
    person: dict[str, Any],
    data: str,
    *,
    message_id: int,
    chat_id: int | None = None,
    id: str | None = None,
    text: str = "…",
    reply_markup: dict[str, Any] | None = None,
    message_date: int | None = None,
    bot: dict[str, Any] | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A press of an inline button with `data` under the bot's message `message_id`."""
    chat = _chat(person, chat_id)
    msg: dict[str, Any] = {
        "message_id": message_id,
        "from": bot or bot_user(),
        "chat": chat,
        "date": int(time.time()) if message_date is None else message_date,
        "text": text,
    }
    if reply_markup is None:
        reply_markup = {"inline_keyboard": [[{"text": "…", "callback_data": data}]]}
    msg["reply_markup"] = reply_markup
    body = {
        "id": str(next(_callback_ids)) if id is None else id,
        "from": person,
        "message": msg,
        "chat_instance": str(-8123456789012345678 + chat["id"]),
        "data": data,
    }
    return _update("callback_query", body, update_id)


def _my_chat_member(
    person: dict[str, Any],
    old: str,
    new: str,
    *,
    bot: dict[str, Any] | None,
    date: int | None,
    update_id: int | None,
) -> dict[str, Any]:
    me = bot or bot_user()

    def member(status: str) -> dict[str, Any]:
        return {"user": me, "status": status} | ({"until_date": 0} if status == "kicked" else {})

    body = {
        "chat": private_chat(person),
        "from": person,
        "date": int(time.time()) if date is None else date,
        "old_chat_member": member(old),
        "new_chat_member": member(new),
    }
    return _update("my_chat_member", body, update_id)


def my_chat_member_blocked(
    person: dict[str, Any],
    *,
    bot: dict[str, Any] | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """The user blocked the bot (member → kicked)."""
    return _my_chat_member(person, "member", "kicked", bot=bot, date=date, update_id=update_id)


def my_chat_member_unblocked(
    person: dict[str, Any],
    *,
    bot: dict[str, Any] | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """The user unblocked (restarted) the bot (kicked → member)."""
    return _my_chat_member(person, "kicked", "member", bot=bot, date=date, update_id=update_id)
