"""The Telegram side of the conversation core: an update becomes an inbound event, `handle`
answers, and each reply becomes Bot API calls (inline buttons, a location keyboard, a photo or a
document, an edit of the previous message)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
    WebAppInfo,
)

from core.bootstrap import Services
from core.conversations import (
    ChatRef,
    Command,
    Contact,
    Event,
    Location,
    Person,
    Reply,
    Text,
    Upload,
)
from core.notify.messages import stored
from core.people import invites
from core.people.identities import Identity, telegram_chat
from core.storage import Files
from core.texts import t

log = logging.getLogger(__name__)
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
SHORT_LABEL = 3  # a list whose labels are all this short (★ ratings) fits one row


def chat_of(user: User, chat_id: int) -> ChatRef:
    return telegram_chat(user.id, chat_id)


def person_of(user: User) -> Person:
    return Person(user.full_name, user.language_code)


def command_of(text: str) -> Command:
    head, _, args = text.partition(" ")
    return Command(head[1:].split("@")[0].lower(), args.strip())


def _download(bot: Bot, file_id: str) -> Callable[[], Awaitable[bytes]]:
    """Fetches the file's bytes from Telegram when the core asks for them."""

    async def fetch() -> bytes:
        file = await bot.get_file(file_id)
        assert file.file_path is not None
        data = await bot.download_file(file.file_path)
        assert data is not None
        return data.read()

    return fetch


def event_of(message: Message, bot: Bot, *, edited: bool = False) -> Event | None:
    """The inbound event in a message (None: nothing the core reads, e.g. a sticker)."""
    if message.location is not None:
        location = message.location
        period = location.live_period
        live = period is not None
        at = message.date
        if edited and message.edit_date:
            at = datetime.fromtimestamp(message.edit_date, UTC)
        until = message.date + timedelta(seconds=period) if period is not None else None
        return Location(
            location.latitude,
            location.longitude,
            live=live,
            heading=location.heading,
            accuracy=location.horizontal_accuracy,
            live_until=until,
            at=at,
            update=edited and live,
            ended=edited and not live,
        )
    if message.photo:
        photo = message.photo[-1]
        return Upload(
            "photo",
            _download(bot, photo.file_id),
            caption=message.caption or "",
            file_ref=photo.file_id,
            size=photo.file_size,
            mime_type="image/jpeg",
        )
    if message.document is not None:
        document = message.document
        return Upload(
            "document",
            _download(bot, document.file_id),
            name=document.file_name or "",
            caption=message.caption or "",
            file_ref=document.file_id,
            size=document.file_size,
            mime_type=document.mime_type,
        )
    if message.contact is not None:
        return Contact(message.contact.phone_number)
    if message.text is not None:
        return command_of(message.text) if message.text.startswith("/") else Text(message.text)
    return None


def markup(reply: Reply, lang: str) -> Markup | None:
    if reply.ask_location:
        button = KeyboardButton(text=t("button.share_location", lang), request_location=True)
        return ReplyKeyboardMarkup(
            keyboard=[[button]], resize_keyboard=True, one_time_keyboard=True
        )
    if reply.close_keyboard:
        return ReplyKeyboardRemove()
    rows: list[list[InlineKeyboardButton]] = []
    if reply.buttons:
        rows.append(
            [InlineKeyboardButton(text=b.label, callback_data=b.data) for b in reply.buttons]
        )
    if reply.choices:
        items = [
            InlineKeyboardButton(text=b.label, callback_data=b.data) for b in reply.choices.rows
        ]
        if all(len(b.label) <= SHORT_LABEL for b in reply.choices.rows):
            rows.append(items)
        else:
            rows += [[item] for item in items]
    if reply.link:
        if reply.link.web_app:
            web_app = WebAppInfo(url=reply.link.url)
            rows.append([InlineKeyboardButton(text=reply.link.label, web_app=web_app)])
        else:
            rows.append([InlineKeyboardButton(text=reply.link.label, url=reply.link.url)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


class MissingFile(Exception):
    """A reply names a file that is not under APP_DATA_DIR."""


async def show(
    bot: Bot, chat_id: int, reply: Reply, lang: str, files: Files, previous: Message | None
) -> Message | None:
    """Send one reply (an edit of `previous` where it asks for one); the message now shown."""
    keys = markup(reply, lang)
    if reply.edit and previous is not None and reply.file is None:
        with contextlib.suppress(TelegramBadRequest):  # unchanged text, or too old to edit
            await previous.edit_text(reply.text)
        return previous
    if reply.file is None:
        return await bot.send_message(chat_id, reply.text, reply_markup=keys)
    file = reply.file
    upload: BufferedInputFile | str
    if file.content is not None:
        upload = BufferedInputFile(file.content, file.name)
    elif file.file_ref is not None:
        upload = file.file_ref
    else:
        content = await stored(files, file.path) if file.path is not None else None
        if content is None:
            raise MissingFile(f"file missing: {file.path}")
        upload = BufferedInputFile(content, Path(file.path or file.name).name)
    caption = reply.text or None
    if file.kind == "document":
        return await bot.send_document(chat_id, upload, caption=caption, reply_markup=keys)
    return await bot.send_photo(chat_id, upload, caption=caption, reply_markup=keys)


class Replies:
    """Shows a turn's replies in one chat as they come (an edit replaces the last one)."""

    def __init__(self, bot: Bot, svc: Services, chat_id: int, lang: str) -> None:
        self.bot, self.chat_id, self.lang = bot, chat_id, lang
        self.files = svc.files
        self.last: Message | None = None

    async def __call__(self, reply: Reply) -> None:
        self.last = await show(self.bot, self.chat_id, reply, self.lang, self.files, self.last)


async def answer(
    bot: Bot,
    svc: Services,
    chat: ChatRef,
    person: Person,
    event: Event,
    who: Identity,
    *,
    callback: CallbackQuery | None = None,
) -> None:
    """Hand `event` to the core and show its replies as they come. A press is acknowledged, with
    an alert on the button when the core answers with one."""
    out = Replies(bot, svc, int(chat.chat_id), who.language)
    acknowledged = callback is None
    shown = 0

    async def show_one(reply: Reply) -> None:
        nonlocal acknowledged
        if callback is not None and not acknowledged:
            acknowledged = True
            with contextlib.suppress(TelegramBadRequest):
                if reply.alert:
                    await callback.answer(reply.text, show_alert=True)
                    return
                await callback.answer()
        await out(reply)

    async def send(reply: Reply) -> None:
        nonlocal shown
        shown += 1
        await show_one(reply)

    replies = await svc.conversations.handle(chat, person, event, send=send, who=who)
    for reply in replies[shown:]:
        await show_one(reply)
    if callback is not None and not acknowledged:
        with contextlib.suppress(TelegramBadRequest):
            await callback.answer()


class TelegramInfo:
    """What the conversations need to know about this bot."""

    live_location = True

    def __init__(self, bot: Bot, svc: Services) -> None:
        self.bot, self.svc = bot, svc

    async def display_name(self) -> str:
        return (await self.bot.me()).full_name

    async def username(self) -> str | None:
        return self.svc.settings.telegram.bot_username or (await self.bot.me()).username

    async def start_link(self, token: str) -> str | None:
        username = await self.username()
        return invites.deep_link(username, token) if username else None

    async def roles_changed(self, chat: ChatRef, who: Identity) -> None:
        from bot.telegram.app import set_member_commands

        await set_member_commands(self.bot, int(chat.chat_id), who.roles, who.language)
