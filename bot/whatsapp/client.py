"""A small client of the WhatsApp Cloud API (Graph API) over httpx: send a message, mark one
read, upload and download media. Not pywa (DESIGN.md says why).

Every call goes to `{WHATSAPP_API_URL}/{WHATSAPP_API_VERSION}/…` with the bearer token. A
refusal becomes a `GraphError` whose `outcome` says what the caller should do, by Graph's error
code first (Meta's codes are the same whatever the HTTP status), then by HTTP status:

- "retry": throttling (4, 80007, 130429, 131056: back off, `retry_after` when Graph said how
  long), Graph's own transient errors (1, 2, 131000, 131016, or `is_transient`), HTTP 429 and
  5xx, and network errors or timeouts (status 0);
- "template": 131047, the person's 24-hour window is closed: send an approved template instead;
- "permanent": anything else (an undeliverable number 131026, a number not in the test list
  131030, a bad request 100/131008/131009/131051/131052/…): sending it again will not help.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import httpx

from core.config import WhatsAppSettings

log = logging.getLogger(__name__)
Outcome = Literal["retry", "template", "permanent"]
THROTTLED = frozenset({4, 80007, 130429, 131056})
TRANSIENT = frozenset({1, 2, 131000, 131016})
WINDOW_CLOSED = 131047
TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024  # Meta's largest media (a document) is 100 MB


class GraphError(Exception):
    """The Graph API refused a call, or could not be reached (`status` 0, `code` 0)."""

    def __init__(
        self,
        status: int,
        code: int,
        title: str,
        *,
        subcode: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"({code}) {title}" if code else title)
        self.status = status
        self.code = code
        self.subcode = subcode
        self.title = title
        self.retry_after = retry_after
        self.outcome: Outcome = outcome_of(status, code, transient)

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLED or self.status == 429


def outcome_of(status: int, code: int, transient: bool = False) -> Outcome:
    if code == WINDOW_CLOSED:
        return "template"
    if code in THROTTLED or code in TRANSIENT or transient:
        return "retry"
    if status == 0 or status == 429 or status >= 500:
        return "retry"
    return "permanent"


def error_of(response: httpx.Response) -> GraphError:
    """Meta's error envelope (`{"error": {...}}`) as a GraphError; a body that is not one (a
    proxy's HTML page) keeps the HTTP status and its reason."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    retry_after = _seconds(response.headers.get("Retry-After"))
    if not isinstance(error, dict):
        return GraphError(response.status_code, 0, response.reason_phrase, retry_after=retry_after)
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = re.sub(r"^\(#\d+\)\s*", "", str(error.get("message") or ""))
    title = str(error.get("error_user_title") or message or response.reason_phrase)
    if details and details != title:
        title = f"{title}: {details}"
    subcode = error.get("error_subcode")
    return GraphError(
        response.status_code,
        _int(error.get("code")),
        title,
        subcode=_int(subcode) if subcode is not None else None,
        transient=error.get("is_transient") is True,
        retry_after=retry_after,
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class GraphClient:
    def __init__(self, settings: WhatsAppSettings, http: httpx.AsyncClient | None = None) -> None:
        token = settings.access_token.get_secret_value() if settings.access_token else ""
        self.phone_number_id = settings.phone_number_id or ""
        self.base = f"{str(settings.api_url).rstrip('/')}/{settings.api_version.strip('/')}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = http or httpx.AsyncClient(timeout=TIMEOUT_S)
        self._own_http = http is None

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, url, headers=self.headers, **kwargs)
        except httpx.TransportError as exc:  # network, timeout: nothing came back
            raise GraphError(0, 0, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise error_of(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(method, f"{self.base}/{path}", **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise GraphError(response.status_code, 0, "Graph answered with no JSON") from exc
        if not isinstance(body, dict):
            raise GraphError(response.status_code, 0, "Graph answered with no JSON object")
        return body

    async def send(self, message: dict[str, Any]) -> str:
        """Send one message body (with "to", without "messaging_product"); its wamid."""
        body = {"messaging_product": "whatsapp", **message}
        answer = await self._json("POST", f"{self.phone_number_id}/messages", json=body)
        messages = answer.get("messages")
        if not (isinstance(messages, list) and messages and isinstance(messages[0], dict)):
            raise GraphError(200, 0, "Graph accepted the message but returned no id")
        return str(messages[0].get("id") or "")

    async def mark_read(self, message_id: str) -> None:
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        await self._json("POST", f"{self.phone_number_id}/messages", json=body)

    async def upload(self, content: bytes, mime: str, filename: str) -> str:
        """Upload a file for later sends; its media id."""
        answer = await self._json(
            "POST",
            f"{self.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (filename, content, mime)},
        )
        media_id = answer.get("id")
        if not media_id:
            raise GraphError(200, 0, "Graph accepted the upload but returned no id")
        return str(media_id)

    async def download(self, media_id: str) -> tuple[bytes, str]:
        """A media id's bytes and mime type (its URL is asked first, then read with the token)."""
        info = await self._json("GET", media_id)
        url, mime = info.get("url"), str(info.get("mime_type") or "application/octet-stream")
        if not isinstance(url, str) or not url:
            raise GraphError(200, 0, f"Graph gave no URL for media {media_id}")
        size = _int(info.get("file_size"))
        if size > MAX_DOWNLOAD_BYTES:
            raise GraphError(200, 0, f"media {media_id} is too large ({size} bytes)")
        response = await self._call("GET", url)
        if len(response.content) > MAX_DOWNLOAD_BYTES:
            raise GraphError(200, 0, f"media {media_id} is too large")
        return response.content, mime
