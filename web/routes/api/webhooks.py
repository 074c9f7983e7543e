"""`/api/v1/webhook`: where this API key's status changes are POSTed, and the delivery log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from core.errors import DomainError
from core.merchants import deliveries as webhooks
from core.models import ApiKey, OutboxStatus
from core.texts import t
from core.validation import MAX_ID, Text
from web.deps import DB
from web.routes.api.common import (
    NOT_FOUND,
    REFUSED,
    UNREADABLE,
    Config,
    Key,
    Svc,
    refusals,
    unprocessable,
)
from web.routes.api.models import FieldError, Strict

router = APIRouter(tags=["webhooks"])

SIGNING = (
    "Each request is a POST with a JSON body and the headers `Lastmile-Event` (the event type), "
    "`Lastmile-Delivery` (the delivery id; the same on every retry) and `Lastmile-Signature: "
    "sha256=<hex>`, the HMAC-SHA256 of the raw request body keyed with this webhook's `secret`. "
    "Recompute it over the bytes you received, before parsing, and compare in constant time. "
    "Answer 2xx within `WEBHOOKS_TIMEOUT_S` (10 s); anything else is retried with backoff "
    "(30 s doubling to 1 h) for `WEBHOOKS_RETRY_HOURS` (24). Deliveries can repeat or arrive "
    "out of order after a retry: use the body's `id` to drop repeats and `created_at` to order."
)


class WebhookSet(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"url": "https://shop.example.com/lastmile"}]},
    )

    url: Text = Field(min_length=1, max_length=webhooks.MAX_URL)
    all_orders: bool = Field(
        default=False,
        description="Every order's changes, not only those of orders made with this key.",
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://shop.example.com/lastmile",
                    "all_orders": False,
                    "secret": "whsec_1mP9…",
                    "signature_header": "Lastmile-Signature",
                }
            ]
        }
    )

    url: str | None = Field(description="Where status changes go; null when switched off.")
    all_orders: bool
    secret: str | None = Field(description="Keys the HMAC-SHA256 signature of each body.")
    signature_header: str = webhooks.SIGNATURE_HEADER


class AttemptOut(BaseModel):
    attempted_at: datetime
    url: str
    status_code: int | None = Field(description="The receiver's HTTP status; null if none.")
    error: str | None
    response_excerpt: str | None = Field(description="The first 500 characters answered.")
    duration_ms: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 812,
                    "event_type": "order.status_changed",
                    "order_id": 42,
                    "status": "sent",
                    "attempts": 2,
                    "created_at": "2026-11-24T09:41:02Z",
                    "delivered_at": "2026-11-24T09:41:33Z",
                    "next_attempt_at": None,
                    "retry_until": "2026-11-25T09:41:02Z",
                    "last_status_code": 200,
                    "last_error": None,
                    "body": {"id": "evt_977", "type": "order.status_changed", "data": {}},
                    "attempt_log": [],
                }
            ]
        }
    )

    id: int
    event_type: str
    order_id: int
    status: OutboxStatus = Field(
        description="pending (waiting for its next try), sending, sent (answered 2xx), dead "
        "(gave up after `retry_until`) or skipped (webhook switched off or key revoked)."
    )
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="The next try, while one is due.")
    retry_until: datetime
    last_status_code: int | None
    last_error: str | None
    body: dict[str, Any] = Field(description="The JSON that is (or was) sent.")
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for older deliveries.")


def _webhook(key: ApiKey) -> WebhookOut:
    return WebhookOut(
        url=key.webhook_url, all_orders=key.webhook_all_orders, secret=key.webhook_secret
    )


def _delivery(log: webhooks.DeliveryLog) -> DeliveryOut:
    row = log.delivery
    assert row.id is not None
    waiting = row.status in (OutboxStatus.PENDING, OutboxStatus.SENDING)
    return DeliveryOut(
        id=row.id,
        event_type=row.event_type,
        order_id=row.order_id,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        next_attempt_at=row.next_attempt_at if waiting else None,
        retry_until=row.retry_until,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        body=json.loads(row.body),
        attempt_log=[AttemptOut.model_validate(a, from_attributes=True) for a in log.attempts],
    )


@router.get("/webhook", summary="Show this key's webhook", description=SIGNING)
async def get_webhook(key: Key) -> WebhookOut:
    return _webhook(key)


@router.put(
    "/webhook",
    summary="Set this key's webhook URL",
    description="Status changes of this key's orders (or all orders) are POSTed to `url`. "
    "A signing secret is made the first time. " + SIGNING,
    responses=UNREADABLE,
)
async def set_webhook(body: WebhookSet, db: DB, key: Key, config: Config) -> WebhookOut:
    assert key.id is not None
    try:
        updated = await webhooks.set_url(
            db,
            key.id,
            body.url,
            all_orders=body.all_orders,
            rules=config.webhooks,
        )
    except DomainError as exc:
        raise unprocessable([FieldError(field="url", message=exc.message())]) from None
    return _webhook(updated)


@router.delete(
    "/webhook",
    status_code=204,
    summary="Switch this key's webhook off",
    description="Deliveries still waiting are skipped; the secret is kept for a later URL.",
)
async def delete_webhook(db: DB, key: Key, config: Config) -> Response:
    assert key.id is not None
    await webhooks.set_url(db, key.id, None, rules=config.webhooks)
    return Response(status_code=204)


@router.post(
    "/webhook/secret",
    summary="Make a new signing secret",
    description="The old secret stops at once, also for retries still waiting.",
)
async def rotate_secret(db: DB, key: Key) -> WebhookOut:
    assert key.id is not None
    return _webhook(await webhooks.rotate_secret(db, key.id))


@router.get(
    "/webhook/deliveries",
    summary="The webhook delivery log",
    description="This key's deliveries, newest first, each with every attempt made.",
)
async def list_deliveries(
    db: DB,
    key: Key,
    status: Annotated[OutboxStatus | None, Query(description="Only in this status.")] = None,
    order_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this order's deliveries.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,10}$", description="`next_cursor` of the previous page."),
    ] = None,
) -> DeliveryPage:
    assert key.id is not None
    before = int(cursor) if cursor else None
    if before is not None and before > MAX_ID:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": t("api.bad_cursor"), "type": "value_error"}]
        )
    logs, next_id = await webhooks.deliveries(
        db, key.id, status=status, order_id=order_id, before_id=before, limit=limit
    )
    return DeliveryPage(
        deliveries=[_delivery(log) for log in logs],
        next_cursor=str(next_id) if next_id else None,
    )


@router.post(
    "/webhook/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery again",
    description="One more try, now; also for a delivery that gave up or was sent.",
    responses={**NOT_FOUND, **REFUSED},
)
async def redeliver(
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's id.")],
    db: DB,
    key: Key,
    svc: Svc,
) -> DeliveryOut:
    assert key.id is not None
    with refusals():
        await webhooks.redeliver(db, key.id, delivery_id, now=svc.clock())
    logs, _ = await webhooks.deliveries(db, key.id, before_id=delivery_id + 1, limit=1)
    return _delivery(logs[0])
