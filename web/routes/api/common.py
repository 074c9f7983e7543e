"""What every `/api/v1` route shares: the API key, the settings, and how refusals are answered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from core.bootstrap import Services
from core.config import Settings
from core.errors import DomainError, NotFound
from core.merchants import apikeys
from core.models import ApiKey
from core.texts import t
from web.limits import CLOSE
from web.routes.api.models import FieldError, Problem

PREFIX = "/api/v1"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer lm_…` with a key from `lastmile apikey create NAME`.",
)
api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same key in an `X-API-Key` header, for clients that cannot set a bearer.",
)


def secret_of(headers: Headers) -> str | None:
    """The key a request carries: `Authorization: Bearer …`, else `X-API-Key`."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return headers.get("x-api-key")


class KeyFirst:
    """Authenticates `/api/v1` requests before anything reads their body (FastAPI reads a body
    before it runs dependencies): without a live key the answer is 401 at once and the
    connection closes unread. The key found is `request.state.api_key`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not f"{scope['path']}/".startswith(f"{PREFIX}/"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        key = await apikeys.authenticate(request.app.state.db, secret_of(request.headers))
        if key is None:
            headers = {"WWW-Authenticate": "Bearer", **CLOSE}
            refusal = JSONResponse({"detail": t("api.unauthorized")}, 401, headers=headers)
            return await refusal(scope, receive, send)
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


async def current_key(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _header: Annotated[str | None, Depends(api_key_header)],
) -> ApiKey:
    """The key `KeyFirst` found (the two schemes document in OpenAPI how a key is sent)."""
    return request.state.api_key


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    return request.app.state.services


Key = Annotated[ApiKey, Depends(current_key)]
Config = Annotated[Settings, Depends(get_settings)]
Svc = Annotated[Services, Depends(get_services)]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or one that is unknown or revoked."},
    503: {
        "model": Problem,
        "description": "The database cannot be reached for a moment; retry after `Retry-After`.",
    },
}
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not well-formed JSON."},
    413: {"model": Problem, "description": "The body is larger than 64 KB (4 MB for a batch)."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "There is no such order."}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The order's status does not allow this change."}
}


@contextmanager
def refusals() -> Iterator[None]:
    """A person-caused refusal from the core becomes 404 or 409 with its sentence."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, exc.message()) from None
    except DomainError as exc:
        raise HTTPException(409, exc.message()) from None


def base_url(config: Settings) -> str:
    return str(config.app.base_url)


def unprocessable(errors: list[FieldError]) -> RequestValidationError:
    """The same 422 body FastAPI gives for a malformed request."""
    return RequestValidationError(
        [
            {"loc": ("body", *error.field.split(".")), "msg": error.message, "type": "value_error"}
            for error in errors
        ]
    )


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A body that is not JSON at all answers 400 (as documented); other invalid input 422."""
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return JSONResponse({"detail": t("api.unreadable_json")}, status_code=400)
    return await request_validation_exception_handler(request, exc)
