"""A fake WhatsApp Cloud API (Graph API v23) for the tests: the real `GraphClient` talks HTTP to it.

    async with FakeGraph() as fake:
        settings = WhatsAppSettings(access_token=fake.token, phone_number_id=fake.phone_number_id,
                                    app_secret=fake.app_secret, api_url=fake.url)
        fake.wrote("16505551234")            # the person wrote to us: her 24-hour window is open
        ...
        assert fake.sent_to("16505551234")[-1].body["text"]["body"] == "…"

What it checks, like Meta: the bearer token (401, code 190), the version in the path and the
business phone number id (400, codes 2500 / 100 subcode 33), and every message body against the
Cloud API's rules (tests/fixtures/whatsapp/; 400 with codes 100, 131008, 131009): the
`messaging_product`, `to`, the type's object, text ≤ 4,096; reply buttons 1–3 with distinct
ids (≤ 256) and titles (≤ 20), bodies ≤ 1,024; lists with 1–10 rows in all, row titles ≤ 24,
descriptions ≤ 72, distinct ids ≤ 200, a button ≤ 20, section titles when there are several;
location requests; captions ≤ 1,024; media by a known uploaded id or a link; templates by name
and language among those approved (`approve`), with the approved number of body parameters
(132001, 132000). It answers with Meta's success and error envelopes.

The 24-hour window: the fake knows when each user last wrote (`wrote`, or `inbound`, which
also delivers the message to the webhook). A free-form message outside the window is accepted
(200 and a wamid) and then fails by a `failed` status webhook with 131047, as Meta does; a
template is accepted whenever.

Statuses: with `webhook_url` set, each accepted message gets signed (`X-Hub-Signature-256`,
HMAC-SHA256 of the raw body with the app secret) status webhooks: `sent` then `delivered`
(`auto_statuses`), `failed` for a closed window; `status_first` makes the first of them arrive
before the send's own response. `send_status` posts any status by hand.

Faults: `fail_next` (any code and HTTP status, e.g. 130429 throttling or a 500),
`rate_limit` (130429 past a number of messages a second), `not_allowed` (131030 for a number).
Media: `POST /{phone}/media` stores uploads; `GET /{media-id}` answers its URL, which serves the
bytes only with the bearer token; `add_media` stores inbound media for downloads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

WINDOW = timedelta(hours=24)
TYPES = {
    "text", "image", "document", "audio", "video", "sticker", "location", "contacts",
    "interactive", "template", "reaction",
}  # fmt: skip
ERRORS = {  # code: (title, HTTP status)
    1: ("An unknown error occurred", 500),
    2: ("Service temporarily unavailable", 503),
    4: ("Application request limit reached", 400),
    100: ("Invalid parameter", 400),
    190: ("Invalid OAuth access token - Cannot parse access token", 401),
    2500: ("Unknown path components", 400),
    80007: ("Rate limit issues", 400),
    130429: ("Rate limit hit", 400),
    131000: ("Something went wrong", 500),
    131008: ("Required parameter is missing", 400),
    131009: ("Parameter value is not valid", 400),
    131026: ("Message Undeliverable", 400),
    131030: ("Recipient phone number not in allowed list", 400),
    131047: ("Re-engagement message", 400),
    131051: ("Unsupported message type", 400),
    131052: ("Media download error", 400),
    131053: ("Media upload error", 400),
    131056: ("(Business Account, Consumer Account) pair rate limit hit", 400),
    132000: ("Number of parameters does not match the expected number of params", 400),
    132001: ("Template name does not exist in the translation", 404),
    132018: ("There was an issue with the parameters in your template.", 400),
}
WINDOW_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer last"
    " replied to this number."
)


class GraphFault(Exception):
    def __init__(
        self,
        code: int,
        details: str = "",
        *,
        status: int | None = None,
        subcode: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        title, default_status = ERRORS.get(code, ("Error", 400))
        super().__init__(f"({code}) {title}: {details}")
        self.code, self.title, self.details = code, title, details
        self.status = status or default_status
        self.subcode = subcode
        self.retry_after = retry_after

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "message": f"(#{self.code}) {self.title}",
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details or self.title},
            "fbtrace_id": secrets.token_urlsafe(16),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


@dataclass
class Sent:
    """A message the fake was asked to send (refused ones too: `error` says why)."""

    to: str
    body: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    wamid: str | None = None
    error: int | None = None  # the Graph error code it was refused with

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def type(self) -> str:
        return str(self.body.get("type", "text"))

    @property
    def text(self) -> str:
        """What the person reads: the text body, the interactive body or the caption."""
        kind = self.type
        part = self.body.get(kind) or {}
        if kind == "text":
            return str(part.get("body", ""))
        if kind == "interactive":
            return str((part.get("body") or {}).get("text", ""))
        return str(part.get("caption", ""))


@dataclass
class _Media:
    content: bytes
    mime: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _need(ok: bool, code: int, details: str) -> None:
    if not ok:
        raise GraphFault(code, details)


def _text(value: Any, name: str, limit: int, *, required: bool = True) -> None:
    if value is None and not required:
        return
    _need(value is not None, 131008, f"{name} is required")
    _need(
        isinstance(value, str) and value.strip() != "", 131009, f"{name} must be a non-empty string"
    )
    _need(len(value) <= limit, 131009, f"{name} is longer than {limit} characters")


class FakeGraph:
    """A Graph API server on 127.0.0.1 with a free port; use as `async with FakeGraph()`."""

    def __init__(
        self,
        *,
        token: str = "EAAG-test-token",
        phone_number_id: str = "106540352242922",
        app_secret: str = "fixture-app-secret-not-real",
        version: str = "v23.0",
    ) -> None:
        self.token, self.phone_number_id, self.app_secret = token, phone_number_id, app_secret
        self.version = version
        self.display_phone_number = "15550783881"
        self.url = ""
        self.sent: list[Sent] = []
        self.reads: list[str] = []  # message ids marked read
        self.media: dict[str, _Media] = {}
        self.uploads: list[str] = []  # media ids uploaded, in order
        self.downloads: list[str] = []  # media ids whose bytes were fetched
        self.templates: dict[tuple[str, str], int] = {}  # (name, language) -> body params
        self.last_inbound: dict[str, datetime] = {}
        self.clock = lambda: datetime.now(UTC)
        self.webhook_url: str | None = None
        self.auto_statuses: tuple[str, ...] = ("sent", "delivered")
        self.status_first = False
        self.webhooks: list[tuple[dict[str, Any], int]] = []  # bodies posted, HTTP status got
        self._faults: list[tuple[str | None, GraphFault]] = []  # (only to whom, fault)
        self.stalled = 0  # sends left unanswered so far
        self._stalls: dict[str, int] = {}  # message type -> sends to leave unanswered
        self._release = asyncio.Event()
        self._rate: float | None = None
        self._recent: list[float] = []
        self._not_allowed: set[str] = set()
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FakeGraph:
        app = web.Application(client_max_size=110 * 1024 * 1024)
        app.router.add_post("/{version}/{phone}/messages", self._messages)
        app.router.add_post("/{version}/{phone}/media", self._upload)
        app.router.add_get("/download/{token}", self._download)
        app.router.add_get("/{version}/{media_id}", self._media_url)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await self.settle()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def settle(self) -> None:
        """Wait (10 s at most) until the status webhooks under way have been posted."""
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)

    # -- what tests tell it -----------------------------------------------------------------

    def wrote(self, wa_id: str, at: datetime | None = None) -> None:
        """`wa_id` wrote to the business at `at` (now): her 24-hour window opens."""
        self.last_inbound[wa_id] = at or self.clock()

    def approve(self, name: str, language: str, params: int) -> None:
        """An approved template with `params` body parameters."""
        self.templates[(name, language)] = params

    def fail_next(
        self,
        code: int,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: float | None = None,
        to: str | None = None,
    ) -> None:
        """The next `times` sends (to `to` only, when given) are refused with Graph error `code`."""
        for _ in range(times):
            self._faults.append((to, GraphFault(code, status=status, retry_after=retry_after)))

    def stall_next(self, kind: str, times: int = 1) -> None:
        """The next `times` sends of messages of type `kind` get no answer until the fake
        closes (then a 503), and are not sent: a sender killed while waiting for them must
        send them again."""
        self._stalls[kind] = self._stalls.get(kind, 0) + times

    def rate_limit(self, per_second: float | None) -> None:
        """Refuse sends past `per_second` in any second with 130429 (None: no limit)."""
        self._rate = per_second

    def not_allowed(self, wa_id: str) -> None:
        self._not_allowed.add(wa_id)

    def add_media(self, content: bytes, mime: str) -> str:
        media_id = str(10**15 + next(self._numbers))
        self.media[media_id] = _Media(content, mime)
        return media_id

    def sent_to(self, wa_id: str) -> list[Sent]:
        """Messages accepted for `wa_id`, in order."""
        return [s for s in self.sent if s.to == wa_id and s.ok]

    # -- webhooks ---------------------------------------------------------------------------

    def status_body(
        self, wamid: str, status: str, to: str, *, error: int | None = None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(self.clock().timestamp())),
            "recipient_id": to,
        }
        if status in ("sent", "delivered"):
            item["pricing"] = {
                "billable": False,
                "pricing_model": "PMP",
                "category": "service",
                "type": "free_customer_service",
            }
        if error is not None:
            title = ERRORS[error][0]
            item["errors"] = [
                {
                    "code": error,
                    "title": title,
                    "message": title,
                    "error_data": {"details": WINDOW_DETAILS if error == 131047 else title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        return self._envelope({"statuses": [item]})

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        metadata = {
            "display_phone_number": self.display_phone_number,
            "phone_number_id": self.phone_number_id,
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": metadata,
                                **value,
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }

    async def post_webhook(self, body: dict[str, Any], *, secret: str | None = None) -> int:
        """POST a signed webhook body to `webhook_url`; the HTTP status it got (0: unreachable)."""
        assert self.webhook_url is not None and self._http is not None
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(raw, secret or self.app_secret),
        }
        try:
            async with self._http.post(self.webhook_url, data=raw, headers=headers) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.webhooks.append((body, status))
        return status

    async def send_status(
        self, wamid: str, status: str, to: str, *, error: int | None = None
    ) -> int:
        return await self.post_webhook(self.status_body(wamid, status, to, error=error))

    async def inbound(self, wa_id: str, text: str, name: str = "Kerry Fisher") -> str:
        """`wa_id` writes `text`: her window opens and the message goes to the webhook."""
        self.wrote(wa_id)
        wamid = f"wamid.in.{next(self._numbers)}"
        message = {
            "from": wa_id,
            "id": wamid,
            "timestamp": str(int(self.clock().timestamp())),
            "type": "text",
            "text": {"body": text},
        }
        contacts = [{"profile": {"name": name}, "wa_id": wa_id}]
        await self.post_webhook(self._envelope({"contacts": contacts, "messages": [message]}))
        return wamid

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- handlers ---------------------------------------------------------------------------

    def _check_auth(self, request: web.Request, *, version: bool = True) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise GraphFault(190)
        if version and request.match_info.get("version") != self.version:
            raise GraphFault(2500, f"unknown version {request.match_info.get('version')!r}")

    def _check_phone(self, request: web.Request) -> None:
        phone = request.match_info["phone"]
        if phone != self.phone_number_id:
            raise GraphFault(
                100,
                f"Unsupported post request. Object with ID '{phone}' does not exist",
                subcode=33,
            )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_auth(request)
            self._check_phone(request)
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise GraphFault(100, "the body is not JSON") from None
            _need(isinstance(body, dict), 100, "the body is not a JSON object")
            _need(
                body.get("messaging_product") == "whatsapp",
                100,
                "messaging_product must be whatsapp",
            )
            if body.get("status") == "read":
                _text(body.get("message_id"), "message_id", 256)
                self.reads.append(body["message_id"])
                return web.json_response({"success": True})
            return await self._send(body)
        except GraphFault as fault:
            return fault.response()

    async def _send(self, body: dict[str, Any]) -> web.StreamResponse:
        if self._stalls.get(kind := str(body.get("type", "text")), 0):
            self._stalls[kind] -= 1
            self.stalled += 1
            await self._release.wait()
            raise GraphFault(2)
        to = body.get("to")
        record = Sent(str(to or ""), body, time.monotonic())
        self.sent.append(record)
        try:
            _text(to, "to", 32)
            self.check_message(body)
            for index, (only, fault) in enumerate(self._faults):
                if only is None or only == record.to:
                    del self._faults[index]
                    raise fault
            now = time.monotonic()
            self._recent = [at for at in self._recent if at > now - 1]
            if self._rate is not None and len(self._recent) >= self._rate:
                raise GraphFault(130429, retry_after=1)
            self._recent.append(now)
            if record.to in self._not_allowed:
                raise GraphFault(131030, f"Recipient phone number not in allowed list: {to}")
        except GraphFault as fault:
            record.error = fault.code
            raise
        wamid = "wamid." + secrets.token_urlsafe(24)
        record.wamid = wamid
        last = self.last_inbound.get(record.to)
        window_open = body.get("type") == "template" or (
            last is not None and self.clock() - last < WINDOW
        )
        if self.webhook_url is not None:
            statuses = self.auto_statuses if window_open else ("failed",)
            if self.status_first and statuses:
                await self._each(wamid, record.to, statuses[:1])
                statuses = statuses[1:]
            self._later(self._each(wamid, record.to, statuses))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": record.to, "wa_id": record.to}],
                "messages": [{"id": wamid}],
            }
        )

    async def _each(self, wamid: str, to: str, statuses: tuple[str, ...]) -> None:
        for status in statuses:  # a failed one: the window was closed
            await self.send_status(wamid, status, to, error=131047 if status == "failed" else None)

    def check_message(self, body: dict[str, Any]) -> None:
        """Meta's rules for a message body; raises GraphFault as Graph would."""
        kind = body.get("type", "text")
        _need(kind in TYPES, 131051, f"type {kind!r} is not supported")
        part = body.get(kind)
        _need(isinstance(part, dict), 131008, f"the {kind} object is required")
        if kind == "text":
            _text(part.get("body"), "text.body", 4096)
        elif kind in ("image", "document", "audio", "video", "sticker"):
            has_id, has_link = "id" in part, "link" in part
            _need(has_id != has_link, 131009, f"{kind} needs exactly one of id and link")
            if has_id:
                _need(str(part["id"]) in self.media, 131053, f"unknown media id {part['id']}")
            _text(part.get("caption"), f"{kind}.caption", 1024, required=False)
            _text(part.get("filename"), f"{kind}.filename", 240, required=False)
        elif kind == "location":
            for name in ("latitude", "longitude"):
                _need(isinstance(part.get(name), int | float), 131009, f"location.{name}")
        elif kind == "interactive":
            self._check_interactive(part)
        elif kind == "template":
            self._check_template(part)

    def _check_interactive(self, part: dict[str, Any]) -> None:
        kind = part.get("type")
        action = part.get("action")
        _need(isinstance(action, dict), 131008, "interactive.action is required")
        body = part.get("body")
        _need(isinstance(body, dict), 131008, "interactive.body is required")
        if header := part.get("header"):
            _text(header.get("text"), "interactive.header.text", 60)
        if footer := part.get("footer"):
            _text(footer.get("text"), "interactive.footer.text", 60)
        if kind == "button":
            _text(body.get("text"), "interactive.body.text", 1024)
            buttons = action.get("buttons")
            _need(isinstance(buttons, list) and 1 <= len(buttons) <= 3, 131009,
                  "interactive.action.buttons: 1 to 3 buttons")  # fmt: skip
            ids, titles = set(), set()
            for button in buttons:
                _need(button.get("type") == "reply", 131009, "a button's type must be reply")
                reply = button.get("reply") or {}
                _text(reply.get("id"), "button id", 256)
                _text(reply.get("title"), "button title", 20)
                _need(reply["id"] not in ids, 131009, "button ids must be unique")
                _need(reply["title"] not in titles, 131009, "button titles must be unique")
                ids.add(reply["id"])
                titles.add(reply["title"])
        elif kind == "list":
            _text(body.get("text"), "interactive.body.text", 4096)
            _text(action.get("button"), "interactive.action.button", 20)
            sections = action.get("sections")
            _need(isinstance(sections, list) and 1 <= len(sections) <= 10, 131009,
                  "interactive.action.sections: 1 to 10 sections")  # fmt: skip
            ids = set()
            count = 0
            for section in sections:
                _text(section.get("title"), "section title", 24, required=len(sections) > 1)
                rows = section.get("rows")
                _need(isinstance(rows, list) and rows, 131009, "a section needs rows")
                for row in rows:
                    count += 1
                    _text(row.get("id"), "row id", 200)
                    _text(row.get("title"), "row title", 24)
                    _text(row.get("description"), "row description", 72, required=False)
                    _need(row["id"] not in ids, 131009, "row ids must be unique")
                    ids.add(row["id"])
            _need(count <= 10, 131009, "a list has at most 10 rows")
        elif kind == "location_request_message":
            _text(body.get("text"), "interactive.body.text", 1024)
            _need(
                action.get("name") == "send_location", 131009, "action.name must be send_location"
            )
        else:
            raise GraphFault(131009, f"interactive type {kind!r} is not supported")

    def _check_template(self, part: dict[str, Any]) -> None:
        name = part.get("name")
        _text(name, "template.name", 512)
        language = (part.get("language") or {}).get("code")
        _text(language, "template.language.code", 32)
        expected = self.templates.get((name, language))
        if expected is None:
            raise GraphFault(132001, f"template name ({name}) does not exist in {language}")
        components = part.get("components") or []
        _need(isinstance(components, list), 131009, "template.components must be a list")
        given = 0
        for component in components:
            _need(component.get("type") in ("header", "body", "button"), 131009, "component type")
            for parameter in component.get("parameters") or []:
                if component["type"] == "body":
                    given += 1
                    _need(parameter.get("type") == "text", 131009, "body parameters are text here")
                    value = parameter.get("text")
                    _text(value, "template parameter", 32768)
                    flat = "\n" not in value and "\t" not in value and "    " not in value
                    _need(flat, 132018, "a parameter has new lines, tabs or 4 spaces in a row")
        if given != expected:
            raise GraphFault(132000, f"expected {expected} parameters, got {given}")

    async def _upload(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
            self._check_phone(request)
            form = await request.post()
            _need(form.get("messaging_product") == "whatsapp", 100, "messaging_product")
            upload = form.get("file")
            _need(isinstance(upload, web.FileField), 131008, "file is required")
            assert isinstance(upload, web.FileField)
            mime = str(form.get("type") or upload.content_type)
            content = upload.file.read()
            _need(0 < len(content) <= 100 * 1024 * 1024, 131053, "the file is empty or too big")
            media_id = self.add_media(content, mime)
            self.uploads.append(media_id)
            return web.json_response({"id": media_id})
        except GraphFault as fault:
            return fault.response()

    async def _media_url(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
            media_id = request.match_info["media_id"]
            media = self.media.get(media_id)
            if media is None:
                raise GraphFault(100, f"Object with ID '{media_id}' does not exist", subcode=33)
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.url}/download/{media.token}",
                    "mime_type": media.mime,
                    "sha256": hashlib.sha256(media.content).hexdigest(),
                    "file_size": str(len(media.content)),
                    "id": media_id,
                }
            )
        except GraphFault as fault:
            return fault.response()

    async def _download(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        token = request.match_info["token"]
        for media_id, media in self.media.items():
            if media.token == token:
                self.downloads.append(media_id)
                return web.Response(body=media.content, content_type=media.mime)
        return web.Response(status=404, text="Not Found")
