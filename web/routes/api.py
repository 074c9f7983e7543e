"""The REST API for merchant systems, `/api/v1`: orders and drivers, behind API keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from core.config import Settings
from core.errors import DomainError, NotFound
from core.lifecycle import Actor, Change, Window
from core.models import ApiKey, OrderStatus
from core.services import apikeys
from core.services.orders import OrderDraft, change_status, normalize_phone
from core.texts import t
from web.deps import DB
from web.routes import api_views as views
from web.routes.api_models import (
    MAX_ID,
    BatchCreate,
    BatchItem,
    BatchResult,
    CancelRequest,
    DriverOut,
    FieldError,
    OrderCreate,
    OrderOut,
    OrderPage,
    Problem,
    RescheduleRequest,
    TimeWindow,
)

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


Key = Annotated[ApiKey, Depends(current_key)]
Config = Annotated[Settings, Depends(get_settings)]
OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="The order's id.", examples=[42])]

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

router = APIRouter(prefix="/api/v1", responses=PROBLEMS)


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


class Invalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _windows(windows: list[TimeWindow]) -> tuple[Window, ...]:
    return tuple(Window(w.start, w.end, w.stop) for w in windows)


def to_draft(body: OrderCreate, config: Settings) -> OrderDraft:
    """The core's draft of a checked request, or `Invalid` naming the fields at fault."""
    phone = None
    if body.customer_phone:
        try:
            phone = normalize_phone(body.customer_phone, config.app.phone_region)
        except DomainError as exc:
            raise Invalid([FieldError(field="customer_phone", message=exc.message())]) from None
    values = body.model_dump(exclude={"time_windows", "customer_phone"})
    try:
        return OrderDraft(**values, customer_phone=phone, windows=_windows(body.time_windows))
    except ValidationError as exc:
        raise Invalid(
            [FieldError(field=_field(e["loc"]), message=e["msg"]) for e in exc.errors()]
        ) from None
    except DomainError as exc:
        raise Invalid([FieldError(field="time_windows", message=exc.message())]) from None


def unprocessable(errors: list[FieldError]) -> RequestValidationError:
    """The same 422 body FastAPI gives for a malformed request."""
    return RequestValidationError(
        [
            {"loc": ("body", *error.field.split(".")), "msg": error.message, "type": "value_error"}
            for error in errors
        ]
    )


@router.post(
    "/orders",
    tags=["orders"],
    status_code=201,
    summary="Create an order",
    description=(
        "Creates one order. Send an `Idempotency-Key` header to make retries safe: the same key "
        "with the same body answers 200 with the order made the first time; the same key with "
        "a different body answers 409. Keys are remembered for a day, per API key. An "
        "`external_ref` that exists already also answers 200 with that order, unchanged."
    ),
    response_description="The new order.",
    responses={
        200: {"model": OrderOut, "description": "The order existed already."},
        **UNREADABLE,
        **REFUSED,
    },
)
async def create_order(
    body: OrderCreate,
    response: Response,
    db: DB,
    key: Key,
    config: Config,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Your unique id for this request (a UUID, say).",
        ),
    ] = None,
) -> OrderOut:
    try:
        draft = to_draft(body, config)
    except Invalid as exc:
        raise unprocessable(exc.errors) from None
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    with refusals():
        order_id, created = await apikeys.create_order(
            db,
            key,
            draft,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            rules=config.orders,
        )
    if not created:
        response.status_code = 200
    order = await views.get_order(db, order_id, base_url(config))
    assert order is not None
    return order


@router.post(
    "/orders/batch",
    tags=["orders"],
    summary="Create up to 500 orders",
    description=(
        "Each order is checked and saved on its own; the answer lists, in request order, "
        "`created`, `existing` (its `external_ref` was saved before) or `error` with the "
        "fields at fault. Sending the same batch again creates nothing new when every order "
        "has an `external_ref`."
    ),
    responses=UNREADABLE,
)
async def create_orders(body: BatchCreate, db: DB, key: Key, config: Config) -> BatchResult:
    items: dict[int, BatchItem] = {}
    drafts: list[tuple[int, OrderDraft]] = []
    for index, raw in enumerate(body.orders):
        try:
            drafts.append((index, to_draft(OrderCreate.model_validate(raw), config)))
        except ValidationError as exc:
            errors = [FieldError(field=_field(e["loc"]), message=e["msg"]) for e in exc.errors()]
            items[index] = BatchItem(index=index, result="error", errors=errors)
        except Invalid as exc:
            items[index] = BatchItem(index=index, result="error", errors=exc.errors)
    outcomes = await apikeys.create_orders(db, key, drafts, rules=config.orders)
    ids = [outcome[0] for outcome in outcomes.values() if isinstance(outcome, tuple)]
    orders = await views.orders_by_id(db, ids, base_url(config))
    for index, outcome in outcomes.items():
        if isinstance(outcome, str):
            error = FieldError(field="body", message=outcome)
            items[index] = BatchItem(index=index, result="error", errors=[error])
        else:
            order_id, created = outcome
            result = "created" if created else "existing"
            items[index] = BatchItem(index=index, result=result, order=orders[order_id])
    listed = [items[index] for index in sorted(items)]
    return BatchResult(
        created=sum(item.result == "created" for item in listed),
        existing=sum(item.result == "existing" for item in listed),
        failed=sum(item.result == "error" for item in listed),
        items=listed,
    )


@router.get(
    "/orders/{order_id}",
    tags=["orders"],
    summary="Get an order",
    description="Status, driver, ETA, windows and tracking link of one order.",
    responses=NOT_FOUND,
)
async def get_order(order_id: OrderId, db: DB, key: Key, config: Config) -> OrderOut:
    order = await views.get_order(db, order_id, base_url(config))
    if order is None:
        raise HTTPException(404, t("error.order_not_found", order=order_id))
    return order


@router.get(
    "/orders",
    tags=["orders"],
    summary="List orders",
    description=(
        "Orders by id, oldest first, optionally filtered. Pages are at most `limit` long; "
        "pass `next_cursor` back as `cursor` for the next one."
    ),
)
async def list_orders(
    db: DB,
    key: Key,
    config: Config,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this status.")] = None,
    due_date: Annotated[
        date | None,
        Query(alias="date", description="Only orders due on this day (YYYY-MM-DD)."),
    ] = None,
    external_ref: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Only the order with this ref.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,10}$",
            description="`next_cursor` of the previous page.",
            examples=["42"],
        ),
    ] = None,
) -> OrderPage:
    after = int(cursor) if cursor else 0
    if after > MAX_ID:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": t("api.bad_cursor"), "type": "value_error"}]
        )
    if external_ref is not None and "\x00" in external_ref:
        return OrderPage(orders=[], next_cursor=None)
    orders, next_id = await views.list_orders(
        db,
        base_url(config),
        status=status,
        due_date=due_date,
        external_ref=external_ref,
        after_id=after,
        limit=limit,
    )
    return OrderPage(orders=orders, next_cursor=str(next_id) if next_id else None)


@router.post(
    "/orders/{order_id}/cancel",
    tags=["orders"],
    summary="Cancel an order",
    description="Cancels an order that is not finished yet; the customer is told.",
    responses={**UNREADABLE, **NOT_FOUND, **REFUSED},
)
async def cancel_order(
    order_id: OrderId,
    db: DB,
    key: Key,
    config: Config,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> OrderOut:
    reason = body.reason if body else None
    with refusals():
        await change_status(
            db,
            order_id,
            OrderStatus.CANCELLED,
            Actor(f"api:{key.id}"),
            Change(reason=reason or "cancelled through the API"),
            rules=config.orders,
        )
    return await get_order(order_id, db, key, config)


@router.post(
    "/orders/{order_id}/reschedule",
    tags=["orders"],
    summary="Reschedule a failed order",
    description=(
        "Gives a failed delivery new time windows; dispatch plans it again. Only a `failed` "
        "order can be rescheduled, and only while it has attempts left (409 otherwise)."
    ),
    responses={**UNREADABLE, **NOT_FOUND, **REFUSED},
)
async def reschedule_order(
    order_id: OrderId, body: RescheduleRequest, db: DB, key: Key, config: Config
) -> OrderOut:
    with refusals():
        await change_status(
            db,
            order_id,
            OrderStatus.RESCHEDULED,
            Actor(f"api:{key.id}"),
            Change(reason=body.reason, windows=_windows(body.time_windows)),
            rules=config.orders,
        )
    return await get_order(order_id, db, key, config)


@router.get(
    "/drivers",
    tags=["drivers"],
    summary="List drivers",
    description="Active drivers, on shift first: first name, when last seen, open orders.",
)
async def list_drivers(db: DB, key: Key) -> list[DriverOut]:
    return await views.drivers(db)
