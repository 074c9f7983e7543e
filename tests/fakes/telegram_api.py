"""A fake Telegram Bot API server for the tests: the real aiogram `Bot` talks HTTP to it.

    async with FakeTelegram() as fake:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
        bot = Bot(fake.token, session=session)
        ...
        assert fake.sent_to(chat_id)[-1].params["text"] == "Order #42 is on its way"

What it checks, like the real server: the token (401), the method name against the Bot API
10.1 spec, case-insensitively (404), required parameters (400; unknown optional ones are
ignored), HTML `parse_mode` markup, text/caption lengths, callback_data size, edits that change
nothing. It answers with the real envelope and error strings, stores uploads (multipart,
`attach://`), serves `getFile` and downloads, queues updates for `getUpdates` (offset, limit,
long poll capped at 1 s, 409 while a webhook is set), delivers updates to a webhook, and injects
faults: `fail_next`, `block`, `flood_limit`.

What it does not do: it knows no real chats, so any integer chat_id is a private chat (negative
ids are groups) and any message_id it has not seen may be edited; MarkdownV2 is not parsed;
`allowed_updates` is stored but not applied; methods other than the common ones answer by the
spec's return type (True, or a Message) or 400 "method not supported by the fake".
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import mimetypes
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.telegram_updates import BOT_FIRST_NAME

SPEC_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "telegram" / "botapi-methods.json"

# Error strings of the real server (tdlib/telegram-bot-api).
UNAUTHORIZED = "Unauthorized"
METHOD_NOT_FOUND = "Not Found: method not found"
NOT_FOUND = "Not Found"
BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_NOT_FOUND = "Bad Request: chat not found"
INTERNAL = "Internal Server Error"
INVALID_FILE_ID = "Bad Request: invalid file_id"
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
FILE_TOO_BIG = "Bad Request: file is too big"
TEXT_EMPTY = "Bad Request: message text is empty"
TEXT_TOO_LONG = "Bad Request: message is too long"
CAPTION_TOO_LONG = "Bad Request: message caption is too long"
BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
DELETE_NOT_FOUND = "Bad Request: message to delete not found"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active;"
    " use deleteWebhook to delete the webhook first"
)
CONFLICT_POLLING = (
    "Conflict: terminated by other getUpdates request;"
    " make sure that only one bot instance is running"
)
NOT_SUPPORTED = "Bad Request: method not supported by the fake"
DEFAULT_DESCRIPTIONS = {
    400: CHAT_NOT_FOUND,
    401: UNAUTHORIZED,
    403: BLOCKED,
    404: NOT_FOUND,
    409: CONFLICT_WEBHOOK,
    500: INTERNAL,
    502: "Bad Gateway",
}

MAX_POLL_SECONDS = 1.0
WEBHOOK_TIMEOUT = 10.0
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_DOWNLOAD = 20 * 1024 * 1024
# Params that hold free text: never decoded as JSON even if they look like it.
TEXT_PARAMS = frozenset({"text", "caption", "data", "query", "title", "description", "url"})
OUTGOING_PREFIXES = ("send", "edit", "copy", "forward", "stopmessagelivelocation")


def load_spec() -> dict[str, dict[str, list[str]]]:
    """Methods of the trimmed Bot API spec: name → {fields, required, returns}."""
    return json.loads(SPEC_PATH.read_text())["methods"]


def is_outgoing(method: str) -> bool:
    """Calls that put something into a chat (blocked users refuse them)."""
    return method.lower().startswith(OUTGOING_PREFIXES)


def is_message_send(method: str) -> bool:
    """Outgoing calls that create or change a message (flood control counts them)."""
    return is_outgoing(method) and method.lower() != "sendchataction"


def decode_scalar(value: Any) -> Any:
    """`"42"` → 42, `"52.5"` → 52.5, `"true"` → True; anything else is returned as it is.
    (aiogram sends every non-string value JSON-encoded in a form field.)"""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            decoded = json.loads(value)
            if isinstance(decoded, int | float | bool) or decoded is None:
                return decoded
    return value


@dataclass
class Call:
    """One request to a Bot API method, as the fake received and answered it."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    at: float = 0.0
    ok: bool = False
    error_code: int | None = None
    description: str | None = None
    file_names: dict[str, str] = field(default_factory=dict)
    result: Any = None

    def value(self, name: str, default: Any = None) -> Any:
        """A parameter with JSON scalars decoded (`"42"` → 42, `"true"` → True)."""
        return decode_scalar(self.params[name]) if name in self.params else default

    @property
    def chat_id(self) -> int | str | None:
        value = self.value("chat_id")
        return value if value is None or isinstance(value, int) else str(value)

    @property
    def text(self) -> str | None:
        return self.params.get("text", self.params.get("caption"))


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass
class _Fault:
    method: str | None  # lower case
    chat_id: int | None
    code: int
    retry_after: int
    times: int
    description: str | None

    def matches(self, call: Call) -> bool:
        if self.method is None:
            if call.method.lower() == "getupdates":
                return False
        elif call.method.lower() != self.method:
            return False
        return self.chat_id is None or call.chat_id == self.chat_id

    def error(self) -> ApiError:
        if self.code == 429:
            err = too_many_requests(self.retry_after)
            if self.description:
                err.description = self.description
            return err
        text = self.description or DEFAULT_DESCRIPTIONS.get(self.code, f"Error {self.code}")
        return ApiError(self.code, text)


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes


class _Window:
    """Sliding-window rate: at most `rate` events a second (over 1/rate s when rate < 1)."""

    def __init__(self, rate: float):
        self.span = max(1.0, 1.0 / rate)
        self.cap = max(1, int(rate * self.span + 1e-9))
        self.times: deque[float] = deque()

    def has_room(self, now: float) -> bool:
        while self.times and now - self.times[0] >= self.span:
            self.times.popleft()
        return len(self.times) < self.cap

    def record(self, now: float) -> None:
        self.times.append(now)


# -- Telegram's HTML parse mode -------------------------------------------------------------

_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_CHAR_REF = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_ATTR = re.compile(r"""\s*([a-zA-Z-]+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of an HTML-formatted text, or ApiError "can't parse entities"
    with the real server's wording (byte offsets are of the UTF-8 source)."""

    def fail(detail: str) -> ApiError:
        return ApiError(400, f"Bad Request: can't parse entities: {detail}")

    def at(i: int) -> int:
        return len(source[:i].encode())

    out: list[str] = []
    pos = 0  # UTF-16 offset in the plain text
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "&":
            m = _CHAR_REF.match(source, i)
            piece = html.unescape(m.group(0)) if m else "&"
            i = m.end() if m else i + 1
        elif c != "<":
            piece, i = c, i + 1
        elif source.startswith("</", i):
            end = source.find(">", i)
            if end < 0:
                raise fail(f"Unclosed end tag at byte offset {at(i)}")
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {at(i)}")
            open_name, start, attrs = stack.pop()
            if name and name != open_name:
                raise fail(
                    f'Unmatched end tag at byte offset {at(i)}, expected "</{open_name}>",'
                    f' found "</{name}>"'
                )
            if pos > start:
                entity: dict[str, Any] = {
                    "type": _HTML_ENTITY_TYPES[open_name],
                    "offset": start,
                    "length": pos - start,
                }
                if open_name == "a":
                    entity["url"] = attrs.get("href", "")
                if open_name == "tg-emoji":
                    entity["custom_emoji_id"] = attrs.get("emoji-id", "")
                entities.append(entity)
            i = end + 1
            continue
        else:
            j = i + 1
            while j < n and not source[j].isspace() and source[j] not in ">":
                j += 1
            name = source[i + 1 : j].lower()
            if name not in _HTML_ENTITY_TYPES:
                raise fail(f'Unsupported start tag "{name}" at byte offset {at(i)}')
            attrs: dict[str, str] = {}
            while j < n and source[j] != ">":
                m = _ATTR.match(source, j)
                if not m or m.end() == j:
                    break
                attrs[m.group(1).lower()] = html.unescape((m.group(2) or "").strip("\"'"))
                j = m.end()
            if j >= n or source[j] != ">":
                raise fail(f"Unclosed start tag at byte offset {at(i)}")
            stack.append((name, pos, attrs))
            i = j + 1
            continue
        out.append(piece)
        pos += _u16(piece)
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


# -- the server ------------------------------------------------------------------------------

_UNSET: Any = object()
Handler = Callable[[Call], Awaitable[Any]]


class FakeTelegram:
    """A Bot API server on 127.0.0.1 with a free port; use as `async with FakeTelegram()`."""

    def __init__(self, token: str = "123456:TEST-token", *, username: str = "lastmile_test_bot"):
        self.token = token
        self.username = username
        self.bot_id = int(token.split(":", 1)[0])
        self.url = ""
        self.calls: list[Call] = []
        self.downloads: list[str] = []  # file paths downloaded, in order
        self.spec = load_spec()
        self._by_lower = {name.lower(): name for name in self.spec}
        self._handlers: dict[str, Handler] = {
            name.lower(): getattr(self, f"_m_{name}")
            for name in self.spec
            if hasattr(self, f"_m_{name}")
        }
        # chats and messages
        self._chats: dict[int, dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._deleted: set[tuple[int, int]] = set()
        # files
        self._files: dict[str, _File] = {}
        self._paths: dict[str, _File] = {}
        self._file_numbers = itertools.count(1)
        # updates and webhook
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._update_event = asyncio.Event()
        self._poll_generation = 0
        self.webhook: dict[str, Any] | None = None
        # bot settings
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # faults
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        self._flood_chat_rate: float | None = None
        self._flood_retry_after = 1
        self._flood_all: _Window | None = None
        self._flood_chats: dict[int, _Window] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- inspection -------------------------------------------------------------------------

    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        """Calls of `method` (any case), optionally only those to `chat_id`; failed included."""
        return [
            c
            for c in self.calls
            if c.method.lower() == method.lower() and (chat_id is None or c.chat_id == chat_id)
        ]

    def sent_to(self, chat_id: int) -> list[Call]:
        """Successful send*/edit* calls to `chat_id` (not sendChatAction), in order."""
        return [
            c
            for c in self.calls
            if c.ok
            and c.chat_id == chat_id
            and c.method.lower().startswith(("send", "edit"))
            and c.method.lower() != "sendchataction"
        ]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    # -- test controls ----------------------------------------------------------------------

    def add_file(
        self,
        content: bytes,
        *,
        file_path: str | None = None,
        file_id: str | None = None,
        file_unique_id: str | None = None,
    ) -> tuple[str, str]:
        """Registers a downloadable file (default path `photos/file_<n>.jpg`); returns
        (file_id, file_unique_id). Pass the ids of a built update to make its file real."""
        number = next(self._file_numbers)
        entry = _File(
            file_id=file_id or f"AgACAgIAAxkBAAI{secrets.token_urlsafe(24)}",
            file_unique_id=file_unique_id or f"AQAD{secrets.token_urlsafe(8)}",
            file_path=file_path or f"photos/file_{number}.jpg",
            content=content,
        )
        self._files[entry.file_id] = entry
        self._paths[entry.file_path] = entry
        return entry.file_id, entry.file_unique_id

    def push_update(self, update: dict[str, Any]) -> int:
        """Queues an update for getUpdates; assigns `update_id` unless it has one (so the same
        update can be pushed twice). Like the real server, getUpdates drops updates below the
        confirmed offset, so a re-push of a confirmed update is never delivered by polling."""
        update = self._numbered(update)
        self._updates.append(update)
        self._wake_pollers()
        return update["update_id"]

    async def deliver_webhook(self, update: dict[str, Any], *, secret: str | None = _UNSET) -> int:
        """POSTs `update` as JSON to the webhook URL, with `X-Telegram-Bot-Api-Secret-Token`
        (the stored secret by default; none when `secret` is None). Returns the HTTP status."""
        if self.webhook is None:
            raise RuntimeError("no webhook is set")
        update = self._numbered(update)
        if secret is _UNSET:
            secret = self.webhook.get("secret_token")
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)) as http,
            http.post(self.webhook["url"], json=update, headers=headers) as resp,
        ):
            await resp.read()
            return resp.status

    def fail_next(
        self,
        method: str | None = None,
        *,
        chat_id: int | None = None,
        code: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """The next `times` calls of `method` (any method but getUpdates when None), to
        `chat_id` if given, fail with `code` and the real description: 429 "Too Many Requests:
        retry after N" (+ parameters.retry_after), 403 blocked, 400 chat not found, 500."""
        key = None if method is None else method.lower()
        self._faults.append(_Fault(key, chat_id, code, retry_after, times, description))

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: every outgoing call to the chat answers 403."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    def flood_limit(
        self,
        per_second: float | None = None,
        per_chat_per_second: float | None = None,
        retry_after: int = 1,
    ) -> None:
        """Flood control: a message send beyond `per_second` overall, or `per_chat_per_second`
        to one chat, in a sliding one-second window answers 429 with `retry_after`. Refused
        sends do not count. `flood_limit(None, None)` turns it off."""
        self._flood_chat_rate = per_chat_per_second
        self._flood_retry_after = retry_after
        self._flood_all = None if per_second is None else _Window(per_second)
        self._flood_chats = {}

    # -- HTTP -------------------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        name = request.match_info["method"]
        call = Call(method=self._by_lower.get(name.lower(), name), params={}, at=at)
        self.calls.append(call)
        try:
            await self._read_params(request, call)
            if request.match_info["token"] != self.token:
                raise ApiError(401, UNAUTHORIZED)
            canonical = self._by_lower.get(name.lower())
            if canonical is None:
                raise ApiError(404, METHOD_NOT_FOUND)
            for param in self.spec[canonical]["required"]:
                if call.params.get(param) in (None, "") and param not in call.files:
                    raise ApiError(400, f'Bad Request: parameter "{param}" is required')
            self._check_faults(call)
            handler = self._handlers.get(canonical.lower(), self._generic)
            result = await handler(call)
        except ApiError as err:
            call.ok, call.error_code, call.description = False, err.code, err.description
            body: dict[str, Any] = {
                "ok": False,
                "error_code": err.code,
                "description": err.description,
            }
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.code)
        call.ok = True
        call.result = result.result if isinstance(result, _Described) else result
        body = {"ok": True, "result": call.result}
        if isinstance(result, _Described):
            body["description"] = result.description
        return web.json_response(body)

    async def _read_params(self, request: web.Request, call: Call) -> None:
        raw: dict[str, Any] = dict(request.query)
        parts: dict[str, tuple[bytes, str]] = {}
        ctype = request.content_type
        if request.method == "POST" and request.can_read_body:
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as err:
                    raise ApiError(400, "Bad Request: can't parse JSON object") from err
                if isinstance(body, dict):
                    raw.update(body)
            elif ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        parts[key] = (value.file.read(), value.filename or key)
                    else:
                        raw[key] = value
        params = {key: self._decode(key, value) for key, value in raw.items()}
        call.params = params
        used: set[str] = set()
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("attach://"):
                part = value.removeprefix("attach://")
                if part in parts:
                    call.files[key], call.file_names[key] = parts[part]
                    used.add(part)
        for part, (content, filename) in parts.items():
            if part not in used:  # media group attachments, or a file posted as the param
                call.files[part], call.file_names[part] = content, filename

    @staticmethod
    def _decode(key: str, value: Any) -> Any:
        if isinstance(value, str) and key not in TEXT_PARAMS and value[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    async def _handle_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": UNAUTHORIZED}, status=401
            )
        path = request.match_info["path"]
        entry = self._paths.get(path)
        if entry is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": NOT_FOUND}, status=404
            )
        self.downloads.append(path)
        return web.Response(body=entry.content, content_type="application/octet-stream")

    # -- checks -----------------------------------------------------------------------------

    def _check_faults(self, call: Call) -> None:
        for fault in self._faults:
            if fault.times > 0 and fault.matches(call):
                fault.times -= 1
                self._faults = [f for f in self._faults if f.times > 0]
                raise fault.error()
        if not is_outgoing(call.method):
            return
        chat_id = call.chat_id
        if chat_id in self._blocked:
            raise ApiError(403, BLOCKED)
        if not is_message_send(call.method):
            return
        now = time.monotonic()
        chat_window = None
        if self._flood_chat_rate is not None and isinstance(chat_id, int):
            chat_window = self._flood_chats.setdefault(chat_id, _Window(self._flood_chat_rate))
        windows = [w for w in (self._flood_all, chat_window) if w is not None]
        if not all(w.has_room(now) for w in windows):  # a refused send counts nowhere
            raise too_many_requests(self._flood_retry_after)
        for window in windows:
            window.record(now)

    # -- helpers for results ----------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": self.username,
        }

    def _numbered(self, update: dict[str, Any]) -> dict[str, Any]:
        """A copy of `update` with its `update_id` (the next one unless it has one)."""
        update = dict(update)
        update.setdefault("update_id", self._next_update_id)
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        self._learn(update)
        return update

    def _learn(self, update: dict[str, Any]) -> None:
        """Remembers chats and message ids seen in an update, so the bot's messages continue
        the chat's numbering and describe the chat like the real server."""
        for kind in ("message", "edited_message", "channel_post", "my_chat_member"):
            body = update.get(kind)
            if isinstance(body, dict) and isinstance(body.get("chat"), dict):
                chat = body["chat"]
                self._chats[chat["id"]] = chat
                if "message_id" in body:
                    last = self._last_message_id.get(chat["id"], 0)
                    self._last_message_id[chat["id"]] = max(last, body["message_id"])

    def _chat_id(self, call: Call, name: str = "chat_id") -> int:
        value = call.value(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, CHAT_NOT_FOUND)
        return value

    def _chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self._chats:
            return self._chats[chat_id]
        if chat_id > 0:
            return {"id": chat_id, "first_name": f"User {chat_id}", "type": "private"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "title": f"Group {chat_id}", "type": kind}

    @staticmethod
    def _int(call: Call, name: str, default: int | None = None) -> int | None:
        value = call.value(name, default)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ApiError(400, f'Bad Request: parameter "{name}" must be an integer')

    @staticmethod
    def _float(call: Call, name: str) -> float | None:
        value = call.value(name)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ApiError(400, f'Bad Request: parameter "{name}" must be a number')

    def _formatted(
        self, call: Call, name: str, entities_name: str, limit: int, too_long: str
    ) -> dict[str, Any]:
        """`text`/`caption` and its entities as they appear in the sent Message."""
        raw = call.params.get(name)
        if raw is None:
            return {}
        text, entities = str(raw), call.params.get(entities_name)
        mode = str(call.params.get("parse_mode", "")).lower()
        if mode == "html":
            text, entities = parse_html(text)
        if name == "text" and not text.strip():
            raise ApiError(400, TEXT_EMPTY)
        if _u16(text) > limit:
            raise ApiError(400, too_long)
        out: dict[str, Any] = {name: text} if text else {}
        if entities:
            out[entities_name] = entities
        return out

    @staticmethod
    def _markup(call: Call) -> dict[str, Any]:
        """The inline keyboard as echoed in the Message (other keyboards are not echoed)."""
        markup = call.params.get("reply_markup")
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return {}
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, BUTTON_DATA_INVALID)
        return {"reply_markup": markup}

    def _new_message(self, chat_id: int, content: dict[str, Any]) -> dict[str, Any]:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        message = {
            "message_id": message_id,
            "from": self.bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message_id)] = message
        return message

    def _register_upload(self, call: Call, name: str, folder: str) -> _File:
        """The file sent as `name`: an upload (stored now), a known file_id, or a URL."""
        if name in call.files:
            filename = call.file_names.get(name, name)
            suffix = Path(filename).suffix or (".jpg" if folder == "photos" else "")
            path = f"{folder}/file_{next(self._file_numbers)}{suffix}"
            file_id, _ = self.add_file(call.files[name], file_path=path)
            return self._files[file_id]
        ref = str(call.params.get(name, ""))
        if ref in self._files:
            return self._files[ref]
        if ref.startswith(("http://", "https://")):
            file_id, _ = self.add_file(b"", file_path=f"{folder}/file_{next(self._file_numbers)}")
            return self._files[file_id]
        raise ApiError(400, WRONG_FILE)

    def _message_target(self, call: Call) -> tuple[int, int] | None:
        """(chat_id, message_id) of an edit, or None for an inline message."""
        if call.params.get("inline_message_id") not in (None, ""):
            return None
        for name in ("chat_id", "message_id"):
            if call.params.get(name) in (None, ""):
                raise ApiError(400, f'Bad Request: parameter "{name}" is required')
        key = (self._chat_id(call), self._int(call, "message_id") or 0)
        if key in self._deleted:
            raise ApiError(400, EDIT_NOT_FOUND)
        return key

    def _edit(self, call: Call, changes: dict[str, Any], drop: tuple[str, ...]) -> Any:
        key = self._message_target(call)
        if key is None:
            return True
        old = self._messages.get(key)
        if old is None:  # a message the fake never saw (e.g. from an update builder)
            old = {
                "message_id": key[1],
                "from": self.bot_user(),
                "chat": self._chat(key[0]),
                "date": int(time.time()),
            }
        new = {k: v for k, v in old.items() if k not in drop and k != "edit_date"}
        new.update(changes)
        if key in self._messages:
            before = {k: v for k, v in old.items() if k != "edit_date"}
            if before == new:
                raise ApiError(400, NOT_MODIFIED)
        new["edit_date"] = int(time.time())
        self._messages[key] = new
        return new

    # -- methods ----------------------------------------------------------------------------

    async def _generic(self, call: Call) -> Any:
        """Any other spec method: True, or a plain Message, by its return type."""
        returns = self.spec[call.method]["returns"]
        if "Message" in returns and call.params.get("chat_id") not in (None, ""):
            content = self._formatted(call, "text", "entities", MAX_TEXT, TEXT_TOO_LONG)
            content |= self._formatted(
                call, "caption", "caption_entities", MAX_CAPTION, CAPTION_TOO_LONG
            )
            return self._new_message(self._chat_id(call), content | self._markup(call))
        if "Boolean" in returns:
            return True
        raise ApiError(400, NOT_SUPPORTED)

    async def _m_getMe(self, call: Call) -> Any:
        return self.bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_logOut(self, call: Call) -> Any:
        return True

    async def _m_close(self, call: Call) -> Any:
        return True

    async def _m_getUpdates(self, call: Call) -> Any:
        if self.webhook is not None:
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = self._int(call, "offset", 0) or 0
        limit = min(max(self._int(call, "limit", 100) or 100, 1), 100)
        timeout = min(max(self._float(call, "timeout") or 0.0, 0.0), MAX_POLL_SECONDS)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # an older long poll is terminated by this one
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, CONFLICT_POLLING)
            if self.webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            if self._updates or self._closing:
                return self._updates[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _wake_pollers(self) -> None:
        self._update_event.set()
        self._update_event = asyncio.Event()

    async def _m_setWebhook(self, call: Call) -> Any:
        url = str(call.params.get("url", ""))
        if not url:
            return await self._m_deleteWebhook(call)
        if not url.startswith(("http://", "https://")):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if call.value("drop_pending_updates") is True:
            self._updates.clear()
        same = self.webhook is not None and self.webhook["url"] == url
        self.webhook = {
            "url": url,
            "secret_token": call.params.get("secret_token") or None,
            "allowed_updates": call.params.get("allowed_updates"),
            "max_connections": self._int(call, "max_connections", 40),
        }
        self._wake_pollers()
        return _Described(True, "Webhook is already set" if same else "Webhook was set")

    async def _m_deleteWebhook(self, call: Call) -> Any:
        if call.value("drop_pending_updates") is True:
            self._updates.clear()
        was_set, self.webhook = self.webhook is not None, None
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _m_getWebhookInfo(self, call: Call) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["allowed_updates"]:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _m_sendMessage(self, call: Call) -> Any:
        chat_id = self._chat_id(call)
        content = self._formatted(call, "text", "entities", MAX_TEXT, TEXT_TOO_LONG)
        return self._new_message(chat_id, content | self._markup(call))

    def _caption(self, call: Call) -> dict[str, Any]:
        return self._formatted(call, "caption", "caption_entities", MAX_CAPTION, CAPTION_TOO_LONG)

    async def _m_sendPhoto(self, call: Call) -> Any:
        chat_id = self._chat_id(call)
        caption = self._caption(call)
        entry = self._register_upload(call, "photo", "photos")
        width, height = _image_size(entry.content)
        scale = 90 / max(width, height)
        thumb_id, thumb_unique = self.add_file(entry.content, file_path=f"{entry.file_path}.thumb")
        sizes = [
            {
                "file_id": thumb_id,
                "file_unique_id": thumb_unique,
                "file_size": len(entry.content),
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
            },
            {
                "file_id": entry.file_id,
                "file_unique_id": entry.file_unique_id,
                "file_size": len(entry.content),
                "width": width,
                "height": height,
            },
        ]
        return self._new_message(chat_id, {"photo": sizes} | caption | self._markup(call))

    async def _m_sendDocument(self, call: Call) -> Any:
        chat_id = self._chat_id(call)
        caption = self._caption(call)
        entry = self._register_upload(call, "document", "documents")
        file_name = call.file_names.get("document", Path(entry.file_path).name)
        document = {
            "file_name": file_name,
            "mime_type": mimetypes.guess_type(file_name)[0] or "application/octet-stream",
            "file_id": entry.file_id,
            "file_unique_id": entry.file_unique_id,
            "file_size": len(entry.content),
        }
        return self._new_message(chat_id, {"document": document} | caption | self._markup(call))

    async def _m_sendLocation(self, call: Call) -> Any:
        chat_id = self._chat_id(call)
        location: dict[str, Any] = {
            "latitude": self._float(call, "latitude"),
            "longitude": self._float(call, "longitude"),
        }
        if not (-90 <= location["latitude"] <= 90 and -180 <= location["longitude"] <= 180):
            raise ApiError(400, "Bad Request: wrong location specified")
        accuracy = self._float(call, "horizontal_accuracy")
        if accuracy is not None:
            location["horizontal_accuracy"] = accuracy
        live_period = self._int(call, "live_period")
        if live_period:
            location["live_period"] = live_period
            for name in ("heading", "proximity_alert_radius"):
                if (value := self._int(call, name)) is not None:
                    location[name] = value
        return self._new_message(chat_id, {"location": location} | self._markup(call))

    async def _m_sendChatAction(self, call: Call) -> Any:
        self._chat_id(call)
        return True

    async def _m_editMessageText(self, call: Call) -> Any:
        content = self._formatted(call, "text", "entities", MAX_TEXT, TEXT_TOO_LONG)
        return self._edit(call, content | self._markup(call), ("text", "entities", "reply_markup"))

    async def _m_editMessageCaption(self, call: Call) -> Any:
        content = self._caption(call) | self._markup(call)
        return self._edit(call, content, ("caption", "caption_entities", "reply_markup"))

    async def _m_editMessageReplyMarkup(self, call: Call) -> Any:
        return self._edit(call, self._markup(call), ("reply_markup",))

    async def _m_deleteMessage(self, call: Call) -> Any:
        key = (self._chat_id(call), self._int(call, "message_id") or 0)
        if key in self._deleted:
            raise ApiError(400, DELETE_NOT_FOUND)
        self._deleted.add(key)
        self._messages.pop(key, None)
        return True

    async def _m_answerCallbackQuery(self, call: Call) -> Any:
        return True

    @staticmethod
    def _commands_key(call: Call) -> tuple[str, str]:
        scope = call.params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(call.params.get("language_code", ""))

    async def _m_setMyCommands(self, call: Call) -> Any:
        commands = call.params["commands"]
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands[self._commands_key(call)] = commands
        return True

    async def _m_deleteMyCommands(self, call: Call) -> Any:
        self.commands.pop(self._commands_key(call), None)
        return True

    async def _m_getMyCommands(self, call: Call) -> Any:
        return self.commands.get(self._commands_key(call), [])

    async def _m_getFile(self, call: Call) -> Any:
        entry = self._files.get(str(call.params["file_id"]))
        if entry is None:
            raise ApiError(400, INVALID_FILE_ID)
        if len(entry.content) > MAX_DOWNLOAD:
            raise ApiError(400, FILE_TOO_BIG)
        return {
            "file_id": entry.file_id,
            "file_unique_id": entry.file_unique_id,
            "file_size": len(entry.content),
            "file_path": entry.file_path,
        }

    async def _m_getChat(self, call: Call) -> Any:
        chat = dict(self._chat(self._chat_id(call)))
        return chat | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }


@dataclass
class _Described:
    """A result whose envelope also carries a `description` (e.g. "Webhook was set")."""

    result: Any
    description: str


def _image_size(content: bytes) -> tuple[int, int]:
    """(width, height) of an image scaled like Telegram's largest size (≤ 1280 px)."""
    try:
        from PIL import Image

        with Image.open(BytesIO(content)) as image:
            width, height = image.size
    except Exception:
        width, height = 800, 600
    scale = min(1.0, 1280 / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
