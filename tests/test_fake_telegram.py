"""The fake Bot API server, driven by the real aiogram Bot over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from io import BytesIO

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiohttp import web
from PIL import Image

from tests.fakes import telegram_updates as tu
from tests.fakes.telegram_api import (
    CONFLICT_WEBHOOK,
    NOT_MODIFIED,
    FakeTelegram,
    decode_scalar,
    load_spec,
    parse_html,
)

CHAT = 111222333
WAIT = 5  # seconds: the bound of every wait in these tests


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    bot = Bot(fake.token, session=session)
    try:
        yield bot
    finally:
        await session.close()


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def raw_post(url: str, **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as resp:
        return resp.status, await resp.json()


# -- basics ---------------------------------------------------------------------------------


def test_trimmed_spec_is_complete() -> None:
    spec = load_spec()
    assert len(spec) == 180
    assert spec["sendMessage"]["required"] == ["chat_id", "text"]
    assert spec["getMe"] == {"fields": [], "required": [], "returns": ["User"]}
    assert "reply_markup" in spec["sendPhoto"]["fields"]


async def test_get_me(fake: FakeTelegram, bot: Bot) -> None:
    me = await asyncio.wait_for(bot.get_me(), WAIT)
    assert me.id == 123456 and me.is_bot and me.username == "lastmile_test_bot"
    assert [c.method for c in fake.calls] == ["getMe"]
    assert fake.calls[0].ok and fake.calls[0].error_code is None


async def test_send_message_with_inline_keyboard(fake: FakeTelegram, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Accept", callback_data="ord:42:accept")]]
    )
    first = await bot.send_message(CHAT, "Order #42 ready for pickup", reply_markup=keyboard)
    second = await bot.send_message(CHAT, "Second")
    assert second.message_id == first.message_id + 1
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert first.reply_markup is not None
    assert first.reply_markup.model_dump() == keyboard.model_dump()
    assert first.text == "Order #42 ready for pickup"

    call = fake.calls_to("sendMessage", chat_id=CHAT)[0]
    assert call.params["text"] == "Order #42 ready for pickup"
    assert call.params["chat_id"] == str(CHAT)  # form fields arrive as strings...
    assert call.chat_id == CHAT and call.value("chat_id") == CHAT  # ...helpers decode them
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Accept", "callback_data": "ord:42:accept"}]]
    }
    assert [c.params["text"] for c in fake.sent_to(CHAT)] == [
        "Order #42 ready for pickup",
        "Second",
    ]
    assert fake.sent_to(CHAT + 1) == []


async def test_bot_messages_continue_the_chats_numbering(fake: FakeTelegram, bot: Bot) -> None:
    fake.push_update(tu.message(tu.user(CHAT, "Dana", "dana_driver"), "hi", message_id=41))
    sent = await bot.send_message(CHAT, "Hello Dana")
    assert sent.message_id == 42
    assert sent.chat.first_name == "Dana" and sent.chat.username == "dana_driver"


async def test_html_parse_mode(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "<b>Order</b> &lt;42&gt; ready", parse_mode="HTML")
    assert sent.text == "Order <42> ready"
    assert sent.entities is not None
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 5)]
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(CHAT, "Line<br>break", parse_mode="HTML")
    assert err.value.message == (
        'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 4'
    )
    with pytest.raises(TelegramBadRequest, match='corresponding to start tag "b"'):
        await bot.send_message(CHAT, "<b>bold", parse_mode="HTML")


def test_parse_html_entities_count_utf16() -> None:
    text, entities = parse_html('🚚 <i>on <a href="https://x.example/t?a=1&amp;b=2">way</a></i>')
    assert text == "🚚 on way"
    assert entities == [
        {"type": "italic", "offset": 3, "length": 6},
        {"type": "text_link", "offset": 6, "length": 3, "url": "https://x.example/t?a=1&b=2"},
    ]


async def test_limits_and_not_modified(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        button = InlineKeyboardButton(text="x", callback_data="d" * 65)
        await bot.send_message(
            CHAT, "x", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]])
        )
    sent = await bot.send_message(CHAT, "Status: assigned")
    edited = await bot.edit_message_text(
        "Status: picked up", chat_id=CHAT, message_id=sent.message_id
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Status: picked up" and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest) as err:
        await bot.edit_message_text("Status: picked up", chat_id=CHAT, message_id=sent.message_id)
    assert err.value.message == NOT_MODIFIED
    assert await bot.delete_message(CHAT, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)


async def test_edits_of_unseen_messages_and_markup(fake: FakeTelegram, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Done", callback_data="done")]]
    )
    edited = await bot.edit_message_reply_markup(chat_id=CHAT, message_id=14, reply_markup=keyboard)
    assert not isinstance(edited, bool) and edited.reply_markup is not None
    assert edited.reply_markup.model_dump() == keyboard.model_dump()
    photo = await bot.send_photo(CHAT, BufferedInputFile(png(), "pod.png"), caption="POD")
    edited = await bot.edit_message_caption(
        chat_id=CHAT, message_id=photo.message_id, caption="POD order 42"
    )
    assert not isinstance(edited, bool)
    assert edited.caption == "POD order 42" and edited.photo is not None and photo.photo
    assert edited.photo[-1].file_id == photo.photo[-1].file_id
    assert await bot.edit_message_text("inline", inline_message_id="AAA") is True


# -- files ----------------------------------------------------------------------------------


async def test_send_photo_upload_then_get_file_and_download(fake: FakeTelegram, bot: Bot) -> None:
    content = png(1600, 1200)
    sent = await bot.send_photo(CHAT, BufferedInputFile(content, "pod.png"), caption="POD #42")
    call = fake.calls_to("sendPhoto")[0]
    assert call.files["photo"] == content
    assert call.file_names["photo"] == "pod.png"
    assert call.params["photo"].startswith("attach://")  # aiogram names the part randomly
    assert call.params["caption"] == "POD #42"

    assert sent.photo is not None and sent.caption == "POD #42"
    largest = sent.photo[-1]
    assert (largest.width, largest.height) == (1280, 960)
    file = await bot.get_file(largest.file_id)
    assert file.file_size == len(content) and file.file_path
    downloaded = await asyncio.wait_for(bot.download(largest.file_id), WAIT)
    assert downloaded is not None and downloaded.read() == content
    assert fake.downloads == [file.file_path]

    again = await bot.send_photo(CHAT + 1, largest.file_id)  # resend by file_id
    assert again.photo is not None and again.photo[-1].file_unique_id == largest.file_unique_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(CHAT, "no-such-file")


async def test_send_document_and_added_files(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_document(CHAT, BufferedInputFile(b"%PDF-1.4 report", "day.pdf"))
    assert sent.document is not None
    assert sent.document.file_name == "day.pdf"
    assert sent.document.mime_type == "application/pdf"
    assert fake.calls_to("sendDocument")[0].files["document"] == b"%PDF-1.4 report"

    file_id, unique = fake.add_file(b"jpeg bytes", file_id="AgAC-large", file_unique_id="AQAD")
    assert (file_id, unique) == ("AgAC-large", "AQAD")
    downloaded = await bot.download(file_id)
    assert downloaded is not None and downloaded.read() == b"jpeg bytes"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.get_file("unknown")
    assert err.value.message == "Bad Request: invalid file_id"


async def test_send_location_live(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_location(CHAT, 52.52, 13.405, live_period=3600, heading=90)
    assert sent.location is not None
    assert (sent.location.latitude, sent.location.live_period, sent.location.heading) == (
        52.52,
        3600,
        90,
    )
    assert fake.calls_to("sendLocation")[0].value("latitude") == 52.52
    pin = await bot.send_location(CHAT, 52.52, 13.405)
    assert pin.location is not None and pin.location.live_period is None


# -- errors ---------------------------------------------------------------------------------


async def test_missing_required_param(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as err:
        await bot(SendMessage.model_construct(chat_id=CHAT))  # no text: skips aiogram's check
    assert err.value.message == 'Bad Request: parameter "text" is required'
    assert fake.calls[-1].ok is False and fake.calls[-1].error_code == 400


async def test_unknown_method_and_case_insensitive_names(fake: FakeTelegram) -> None:
    status, body = await raw_post(f"{fake.url}/bot{fake.token}/sendTeleport", data={"a": "1"})
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    status, body = await raw_post(f"{fake.url}/bot{fake.token}/GETME")
    assert status == 200 and body["ok"] is True and body["result"]["is_bot"] is True
    assert [c.method for c in fake.calls] == ["sendTeleport", "getMe"]


async def test_json_body_and_unknown_optional_params(fake: FakeTelegram) -> None:
    status, body = await raw_post(
        f"{fake.url}/bot{fake.token}/sendMessage",
        json={"chat_id": CHAT, "text": "hi", "receiver_user_id": 5, "ephemeral": True},
    )
    assert status == 200 and body["result"]["text"] == "hi"
    assert fake.calls[-1].params["chat_id"] == CHAT


async def test_wrong_token(fake: FakeTelegram) -> None:
    status, body = await raw_post(f"{fake.url}/bot999:nope/getMe")
    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await Bot("42:wrong", session=session).get_me()
    finally:
        await session.close()


async def test_fail_next_429(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(CHAT, "hi")
    assert err.value.retry_after == 3
    # aiogram rewrites the message; the server's description is kept at the end
    assert err.value.message.endswith("Original description: Too Many Requests: retry after 3")
    assert (fake.calls[-1].ok, fake.calls[-1].error_code) == (False, 429)
    await bot.send_message(CHAT, "hi")  # only the next one failed
    assert [c.ok for c in fake.calls_to("sendMessage")] == [False, True]
    assert len(fake.sent_to(CHAT)) == 1


async def test_fail_next_other_codes_and_chat_filter(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_next(chat_id=CHAT, code=500, times=2)
    await bot.send_message(CHAT + 1, "other chat is fine")
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Internal Server Error"):
            await bot.send_message(CHAT, "hi")
    await bot.send_message(CHAT, "hi")
    fake.fail_next("sendMessage", code=400)
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(CHAT, "hi")
    assert err.value.message == "Bad Request: chat not found"
    fake.fail_next("sendMessage", code=403)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")


async def test_block(fake: FakeTelegram, bot: Bot) -> None:
    fake.block(CHAT)
    with pytest.raises(TelegramForbiddenError) as err:
        await bot.send_message(CHAT, "hi")
    assert err.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(CHAT, "typing")
    await bot.send_message(CHAT + 1, "others still get messages")
    assert fake.calls_to("sendMessage", chat_id=CHAT)[0].error_code == 403
    fake.unblock(CHAT)
    await bot.send_message(CHAT, "back")


async def test_flood_limit_per_chat(fake: FakeTelegram, bot: Bot) -> None:
    fake.flood_limit(per_chat_per_second=2, retry_after=1)
    await bot.send_message(CHAT, "1")
    await bot.send_message(CHAT, "2")
    await bot.send_message(CHAT + 1, "another chat has its own window")
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(CHAT, "3")
    assert err.value.retry_after == 1
    first = fake.sent_to(CHAT)[0].at
    await asyncio.sleep(max(0.0, first + 1.05 - time.monotonic()))
    await bot.send_message(CHAT, "3 again")  # the window slid on
    assert [c.params["text"] for c in fake.sent_to(CHAT)] == ["1", "2", "3 again"]


async def test_flood_limit_overall(fake: FakeTelegram, bot: Bot) -> None:
    fake.flood_limit(per_second=3, retry_after=2)
    for chat in range(1, 4):
        await bot.send_message(chat, "x")
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(4, "x")
    assert err.value.retry_after == 2
    assert await bot.get_me()  # only message sends are limited
    fake.flood_limit(None, None)
    await bot.send_message(4, "x")


# -- updates and webhook --------------------------------------------------------------------


async def test_get_updates_offset_and_limit(fake: FakeTelegram, bot: Bot) -> None:
    dana = tu.user(CHAT, "Dana")
    ids = [fake.push_update(tu.message(dana, f"m{i}")) for i in range(3)]
    assert ids == [1, 2, 3]
    updates = await bot.get_updates(limit=2)
    assert [u.update_id for u in updates] == [1, 2]
    assert updates[0].message is not None and updates[0].message.text == "m0"
    updates = await bot.get_updates(offset=3)
    assert [u.update_id for u in updates] == [3]
    assert await bot.get_updates(offset=4) == []
    assert fake.pending_updates == []
    fake.push_update(tu.message(dana, "again", update_id=3))  # already confirmed: dropped
    assert fake.push_update(tu.message(dana, "next")) == 4
    assert [u.update_id for u in await bot.get_updates(offset=4)] == [4]


async def test_get_updates_long_poll_wakes_on_push(fake: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    assert await asyncio.wait_for(bot.get_updates(timeout=30), WAIT) == []
    assert 0.9 <= time.monotonic() - started < 3  # capped at 1 s

    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.2)
    assert not poll.done()
    pushed_at = time.monotonic()
    fake.push_update(tu.command(tu.user(CHAT), "/start", "inv_abc"))
    updates = await asyncio.wait_for(poll, WAIT)
    assert time.monotonic() - pushed_at < 0.5
    assert updates[0].message is not None and updates[0].message.text == "/start inv_abc"


async def test_a_second_long_poll_terminates_the_first(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=1))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, WAIT)
    assert await asyncio.wait_for(second, WAIT) == []


async def test_webhook_delivery_and_conflict(fake: FakeTelegram, bot: Bot) -> None:
    received: list[tuple[str | None, dict]] = []

    async def handler(request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((secret, await request.json()))
        return web.Response(status=200 if secret == "s3cret" else 401)

    app = web.Application()
    app.router.add_post("/tg", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/tg"
        assert await bot.set_webhook(url, secret_token="s3cret") is True
        assert fake.webhook is not None and fake.webhook["secret_token"] == "s3cret"
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0

        update = tu.callback(tu.user(CHAT), "ord:42:accept", message_id=14)
        assert await asyncio.wait_for(fake.deliver_webhook(update), WAIT) == 200
        assert await fake.deliver_webhook(update, secret="wrong") == 401
        assert await fake.deliver_webhook(update, secret=None) == 401
        assert [s for s, _ in received] == ["s3cret", "wrong", None]
        assert received[0][1]["callback_query"]["data"] == "ord:42:accept"
        assert received[0][1]["update_id"] == received[1][1]["update_id"] - 1

        with pytest.raises(TelegramConflictError) as err:
            await bot.get_updates()
        assert err.value.message == CONFLICT_WEBHOOK
        assert await bot.delete_webhook() is True
        assert await bot.get_updates() == []
    finally:
        await runner.cleanup()


# -- other methods --------------------------------------------------------------------------


async def test_commands_chat_and_misc(fake: FakeTelegram, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="help", description="Help"),
    ]
    assert await bot.set_my_commands(commands) is True
    assert fake.calls_to("setMyCommands")[0].params["commands"] == [
        {"command": "start", "description": "Start"},
        {"command": "help", "description": "Help"},
    ]
    assert [c.model_dump() for c in await bot.get_my_commands()] == [
        c.model_dump() for c in commands
    ]
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []
    chat = await bot.get_chat(CHAT)
    assert chat.id == CHAT and chat.type == "private"
    assert await bot.answer_callback_query("4382719283749283", text="Accepted") is True
    assert await bot.send_chat_action(CHAT, "upload_photo") is True
    assert fake.sent_to(CHAT) == []  # chat actions are not messages
    assert await bot.log_out() is True and await bot.close() is True
    pinned = await bot.pin_chat_message(CHAT, 1)  # answered from the spec: returns True
    assert pinned is True
    with pytest.raises(TelegramBadRequest, match="method not supported by the fake"):
        await bot.get_chat_member_count(CHAT)


def test_decode_scalar() -> None:
    assert decode_scalar("42") == 42 and decode_scalar("-1.5") == -1.5
    assert decode_scalar("true") is True and decode_scalar("hello") == "hello"


# -- update builders ------------------------------------------------------------------------


def _validate(update: dict) -> Update:
    return Update.model_validate({**update, "update_id": 1})


def test_builders_validate_in_aiogram() -> None:
    dana = tu.user(CHAT, "Dana", "dana_driver", last_name="Driver")
    built = [
        tu.message(dana, "hello"),
        tu.command(dana, "/start", "inv_Q2xpZW50QWNtZQ"),
        tu.location(dana, 52.520008, 13.404954, horizontal_accuracy=12.5),
        tu.location(dana, 52.520008, 13.404954, live_period=28800, message_id=12),
        tu.location(dana, 52.52, 13.41, live_period=28800, heading=45, edit=True, message_id=12),
        tu.location(dana, 52.523, 13.41, heading=45, edit=True, message_id=12),
        tu.photo(dana, "AgAC-large", "AQADlarge", caption="POD order 42"),
        tu.document(dana, "BQAC-doc", "AgADdoc", "pod.pdf", "application/pdf"),
        tu.contact(dana, "+4915112345678"),
        tu.contact(dana, "+4915100000000", own=False, first_name="Neighbour"),
        tu.callback(dana, "ord:42:accept", message_id=14),
        tu.my_chat_member_blocked(dana),
        tu.my_chat_member_unblocked(dana),
        tu.message(dana, "in a group", chat_id=-1001234567890),
    ]
    for update in built:
        assert "update_id" not in update
        _validate(update)
    assert tu.message(dana, "x", update_id=7)["update_id"] == 7


def test_builders_follow_the_real_shapes() -> None:
    dana = tu.user(CHAT, "Dana", "dana_driver", last_name="Driver")
    start = _validate(tu.command(dana, "/start", "inv_abc")).message
    assert start is not None and start.entities is not None
    assert (start.entities[0].type, start.entities[0].length) == ("bot_command", 6)
    assert start.chat.type == "private" and start.chat.username == "dana_driver"

    live = _validate(tu.location(dana, 52.5, 13.4, live_period=900, message_id=12)).message
    assert live is not None and live.location is not None and live.location.live_period == 900
    moved = _validate(
        tu.location(dana, 52.6, 13.5, live_period=900, heading=45, edit=True, message_id=12)
    ).edited_message
    assert moved is not None and moved.location is not None and moved.edit_date is not None
    assert (moved.message_id, moved.location.heading) == (12, 45)
    stopped = tu.location(dana, 52.6, 13.5, heading=45, edit=True, message_id=12)
    assert stopped["edited_message"]["location"] == {"latitude": 52.6, "longitude": 13.5}
    with pytest.raises(ValueError):
        tu.location(dana, 52.6, 13.5, edit=True)

    photo = _validate(tu.photo(dana, "AgAC-large", "AQADlarge")).message
    assert photo is not None and photo.photo is not None
    assert photo.photo[-1].file_id == "AgAC-large" and photo.photo[0].width == 90

    press = _validate(tu.callback(dana, "ord:42:accept", message_id=14)).callback_query
    assert press is not None and press.message is not None and press.data == "ord:42:accept"
    assert press.message.from_user is not None and press.message.from_user.is_bot
    blocked = _validate(tu.my_chat_member_blocked(dana)).my_chat_member
    assert blocked is not None and blocked.new_chat_member.status == "kicked"
    shared = _validate(tu.contact(dana, "+49151")).message
    assert shared is not None and shared.contact is not None and shared.contact.user_id == CHAT


async def test_pushed_builder_updates_reach_aiogram(fake: FakeTelegram, bot: Bot) -> None:
    dana = tu.user(CHAT, "Dana")
    fake.push_update(tu.photo(dana, "AgAC-large", "AQADlarge", caption="POD"))
    fake.push_update(tu.callback(dana, "ok", message_id=3))
    updates = await bot.get_updates()
    assert [u.event_type for u in updates] == ["message", "callback_query"]
    assert json.loads(updates[0].model_dump_json(exclude_none=True))["message"]["caption"] == "POD"


async def test_dispatcher_polling_end_to_end(fake: FakeTelegram, bot: Bot) -> None:
    """aiogram's own polling loop: getUpdates with offsets, a handler, the reply."""
    dp = Dispatcher()
    answered = [asyncio.Event(), asyncio.Event()]

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        await message.answer(f"Welcome, {message.from_user.first_name}")
        answered[len(fake.sent_to(CHAT)) - 1].set()

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=30)
    )
    try:
        fake.push_update(tu.command(tu.user(CHAT, "Dana"), "/start", "inv_abc"))
        await asyncio.wait_for(answered[0].wait(), WAIT)
        fake.push_update(tu.command(tu.user(CHAT, "Dana"), "/start"))
        await asyncio.wait_for(answered[1].wait(), WAIT)
        # each update handled once: the second poll confirmed the first update
        assert [c.params["text"] for c in fake.sent_to(CHAT)] == ["Welcome, Dana"] * 2
    finally:
        await asyncio.wait_for(dp.stop_polling(), WAIT)
        await asyncio.wait_for(polling, WAIT)
    polls = fake.calls_to("getUpdates")
    assert polls[0].value("timeout") == 30
    assert any(c.value("offset") == 2 for c in polls)  # the update was confirmed
