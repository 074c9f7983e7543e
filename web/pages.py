"""What the server-rendered pages share: their Jinja environment (templates in web/templates/),
and for the staff's web views (the pad, the board, the driver's page) the refusal codes of a link,
the headers that keep them out of caches, and the same-origin check of their posts."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates

from core.errors import DomainError, NotFound
from core.webviews import initdata, links

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
STATUS: dict[type[DomainError], int] = {
    links.BadLink: 403,
    links.LinkExpired: 410,
    links.LinkRevoked: 410,
    initdata.BadInitData: 403,
    initdata.InitDataExpired: 401,
    initdata.InitDataReplayed: 409,
    NotFound: 404,
}


def status_of(exc: DomainError, extra: dict[type[DomainError], int] | None = None) -> int:
    """The HTTP status a refused web view answers with (422 for anything a person got wrong)."""
    codes = {**STATUS, **(extra or {})}
    return next((code for kind, code in codes.items() if isinstance(exc, kind)), 422)


def language(request: Request) -> str:
    return str(request.app.state.settings.app.language)


def same_origin(request: Request) -> bool:
    """A browser names the page that posts: it must be ours (or the client is no browser)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in (None, "same-origin")
    ours = {str(request.base_url).rstrip("/"), str(request.app.state.settings.app.base_url)}
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" in {o.rstrip("/") for o in ours}
