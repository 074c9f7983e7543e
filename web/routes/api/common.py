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

from core.config import Settings
from core.errors import DomainError, NotFound
from core.models import ApiKey
from core.services import apikeys
from core.services.hub import Services
from core.texts import t
from web.deps import DB
from web.routes.api.models import FieldError, Problem

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


def unauthorized() -> HTTPException:
    return HTTPException(401, t("api.unauthorized"), headers={"WWW-Authenticate": "Bearer"})


async def current_key(
    db: DB,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header: Annotated[str | None, Depends(api_key_header)],
) -> ApiKey:
    secret = credentials.credentials if credentials else header
    key = await apikeys.authenticate(db, secret)
    if key is None:
        raise unauthorized()
    return key


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    return request.app.state.services


Key = Annotated[ApiKey, Depends(current_key)]
Config = Annotated[Settings, Depends(get_settings)]
Svc = Annotated[Services, Depends(get_services)]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or one that is unknown or revoked."},
}
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not well-formed JSON."}
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
