"""`/api/v1/orders`: create (one, or a batch), read, list, cancel and reschedule orders, and fetch
an order's proof of delivery through a signed, expiring link."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.config import Settings
from core.drivers import proofs
from core.errors import DomainError
from core.merchants import apikeys
from core.models import OrderStatus, ProofKind
from core.orders import views
from core.orders.lifecycle import Change, Window
from core.orders.service import OrderDraft, change_status, normalize_phone
from core.texts import t
from core.validation import MAX_ID
from web.deps import DB
from web.routes.api.common import (
    NOT_FOUND,
    REFUSED,
    UNREADABLE,
    Config,
    Key,
    Svc,
    base_url,
    refusals,
    unprocessable,
)
from web.routes.api.models import (
    BatchCreate,
    BatchItem,
    BatchResult,
    CancelRequest,
    FieldError,
    OrderCreate,
    OrderOut,
    OrderPage,
    Problem,
    ProofOut,
    RescheduleRequest,
    SignatureOut,
    TimeWindow,
)

router = APIRouter(tags=["orders"])
OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="The order's id.", examples=[42])]


def _out(view: views.OrderView) -> OrderOut:
    return OrderOut.model_validate(view, from_attributes=True)


async def _order(db: DB, order_id: int, config: Settings) -> OrderOut:
    view = await views.get_order(db, order_id, base_url(config))
    if view is None:
        raise HTTPException(404, t("error.order_not_found", order=order_id))
    return _out(view)


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


@router.post(
    "/orders",
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
    return await _order(db, order_id, config)


@router.post(
    "/orders/batch",
    summary="Create up to 500 orders",
    description=(
        "Each order is checked and saved on its own; the answer lists, in request order, "
        "`created`, `existing` (its `external_ref` was saved before) or `error` with the "
        "fields at fault. Sending the same batch again creates nothing new when every order "
        "has an `external_ref`. The body may be up to 4 MB."
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
            items[index] = BatchItem(index=index, result=result, order=_out(orders[order_id]))
    listed = [items[index] for index in sorted(items)]
    return BatchResult(
        created=sum(item.result == "created" for item in listed),
        existing=sum(item.result == "existing" for item in listed),
        failed=sum(item.result == "error" for item in listed),
        items=listed,
    )


@router.get(
    "/orders/{order_id}",
    summary="Get an order",
    description="Status, driver, ETA, windows and tracking link of one order.",
    responses=NOT_FOUND,
)
async def get_order(order_id: OrderId, db: DB, key: Key, config: Config) -> OrderOut:
    return await _order(db, order_id, config)


@router.get(
    "/orders",
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
    return OrderPage(
        orders=[_out(view) for view in orders], next_cursor=str(next_id) if next_id else None
    )


@router.post(
    "/orders/{order_id}/cancel",
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
            apikeys.actor(key),
            Change(reason=reason or "cancelled through the API"),
            rules=config.orders,
        )
    return await _order(db, order_id, config)


@router.post(
    "/orders/{order_id}/reschedule",
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
            apikeys.actor(key),
            Change(reason=body.reason, windows=_windows(body.time_windows)),
            rules=config.orders,
        )
    return await _order(db, order_id, config)


@router.get(
    "/orders/{order_id}/proof",
    summary="Get an order's proof of delivery",
    description=(
        "What the driver recorded at the door: the kind of proof, when, the recipient's name, "
        "and for a photo a signed link to it that works for `APP_PROOF_LINK_MINUTES` (60) "
        "minutes, without an API key. Ask again for a fresh link."
    ),
    responses={404: {"model": Problem, "description": "No such order, or it has no proof."}},
)
async def get_proof(order_id: OrderId, db: DB, key: Key, svc: Svc) -> ProofOut:
    proof = await proofs.latest(db, order_id)
    if proof is None:
        await _order(db, order_id, svc.settings)  # 404 for an unknown order
        raise HTTPException(404, t("api.no_proof", order=order_id))
    url = expires_at = None
    if proof.stored_path and proof.id is not None:
        url, expires_at = svc.signer.proof_url(proof.id, svc.clock())
    signature = None
    if (drawn := await proofs.latest_signature(db, order_id)) is not None and drawn.id:
        png_url, until = svc.signer.proof_url(drawn.id, svc.clock())
        svg_url, _ = svc.signer.proof_url(drawn.id, svc.clock(), svg=True)
        signature = SignatureOut(
            recipient_name=drawn.recipient_name,
            signed_at=drawn.captured_at,
            lat=drawn.lat,
            lon=drawn.lon,
            png_url=png_url,
            png_sha256=drawn.sha256,
            svg_url=svg_url,
            svg_sha256=drawn.signature_sha256,
            expires_at=until,
        )
    return ProofOut(
        kind=proof.kind,
        captured_at=proof.captured_at,
        recipient_name=proof.recipient_name,
        photo_url=url if proof.kind is not ProofKind.SIGNATURE else None,
        photo_expires_at=expires_at if proof.kind is not ProofKind.SIGNATURE else None,
        signature=signature,
    )
