"""The REST API's request and response bodies, with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    model_validator,
)

from core.models import ProofKind, StopKind
from core.orders.views import OrderView, WindowView
from core.validation import Text

MAX_BATCH = 500
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _in_range(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError("must be between 2000 and 2100")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]

WINDOW_EXAMPLE: dict[str, JsonValue] = {
    "start": "2026-11-24T09:00:00+01:00",
    "end": "2026-11-24T12:00:00+01:00",
}
ORDER_EXAMPLE: dict[str, Any] = {
    "external_ref": "A-1001",
    "customer_name": "Ana Lima",
    "customer_phone": "+4915112345678",
    "address": "Hauptstr. 5, 10115 Berlin",
    "lat": 52.5321,
    "lon": 13.3849,
    "due_date": "2026-11-24",
    "time_windows": [WINDOW_EXAMPLE],
    "weight_kg": 2.5,
    "notes": "Ring twice",
    "proof_required": "photo",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class TimeWindow(Strict):
    """A time window, ISO 8601 with a UTC offset (`Z` or `+01:00`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [WINDOW_EXAMPLE]})

    start: Moment = Field(description="When the window opens.")
    end: Moment = Field(description="When it closes; after `start`, at most 7 days later.")
    stop: StopKind = Field(
        default=StopKind.DELIVERY, description="`pickup` windows apply to the pickup point."
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=7):
            raise ValueError("a window may last at most 7 days")
        return self


class OrderCreate(Strict):
    """A new order. `external_ref`, when given, is your key for it: sending an order whose
    reference exists already answers with that order and creates nothing."""

    model_config = ConfigDict(json_schema_extra={"examples": [ORDER_EXAMPLE]})

    external_ref: Text | None = Field(
        default=None, min_length=1, max_length=100, description="Your order number; unique."
    )
    customer_name: Text = Field(min_length=1, max_length=200)
    customer_phone: Text | None = Field(
        default=None,
        max_length=40,
        description="With country code (`+49…`), or in the country of `APP_PHONE_REGION`.",
    )
    customer_language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$",
        description="The customer's language (`de`, `en-GB`): messages and the tracking page "
        "use it where Lastmile has it, English otherwise.",
        examples=["de"],
    )
    address: Text = Field(min_length=1, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    pickup_address: Text | None = Field(default=None, min_length=1, max_length=500)
    pickup_lat: float | None = Field(default=None, ge=-90, le=90)
    pickup_lon: float | None = Field(default=None, ge=-180, le=180)
    due_date: date | None = Field(default=None, ge=date(2000, 1, 1), le=date(2099, 12, 31))
    time_windows: list[TimeWindow] = Field(default_factory=list, max_length=5)
    service_minutes: float | None = Field(default=None, ge=0, le=240)
    weight_kg: float | None = Field(default=None, ge=0, le=100_000)
    volume_l: float | None = Field(default=None, ge=0, le=100_000)
    units: int | None = Field(default=None, ge=0, le=100_000)
    notes: Text = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=0, le=2, description="0 normal, 1 high, 2 urgent.")
    required_skills: list[Annotated[Text, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20
    )
    zone: Text | None = Field(default=None, max_length=50)
    proof_required: ProofKind = ProofKind.PHOTO
    delivery_pin: str | None = Field(default=None, pattern=r"^[0-9]{4,8}$")

    @model_validator(mode="after")
    def _points_are_whole(self) -> OrderCreate:
        for prefix in ("", "pickup_"):
            lat, lon = getattr(self, f"{prefix}lat"), getattr(self, f"{prefix}lon")
            if (lat is None) != (lon is None):
                raise ValueError(f"give both {prefix}lat and {prefix}lon, or neither")
            if lat == 0 and lon == 0:
                raise ValueError(f"{prefix}lat/{prefix}lon 0,0 is in the ocean, not an address")
        if self.pickup_lat is not None and not self.pickup_address:
            raise ValueError("a pickup point needs a pickup_address")
        return self


class BatchCreate(Strict):
    """Up to 500 orders. Each is checked and saved on its own: one bad order refuses only
    itself. Each item has the fields of `OrderCreate`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"orders": [ORDER_EXAMPLE, {**ORDER_EXAMPLE, "lat": 95}]}]}
    )

    orders: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        json_schema_extra={"items": {"$ref": "#/components/schemas/OrderCreate"}},
    )


class CancelRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "customer cancelled"}]})

    reason: Text | None = Field(default=None, max_length=500)


class RescheduleRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "time_windows": [
                        {"start": "2026-11-25T14:00:00+01:00", "end": "2026-11-25T17:00:00+01:00"}
                    ],
                    "reason": "customer asked for tomorrow afternoon",
                }
            ]
        }
    )

    time_windows: list[TimeWindow] = Field(min_length=1, max_length=5)
    reason: Text | None = Field(default=None, max_length=500)


class WindowOut(WindowView):
    pass


class OrderOut(OrderView):
    """An order as the API shows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "external_ref": "A-1001",
                    "status": "out_for_delivery",
                    "customer_name": "Ana Lima",
                    "customer_phone": "+4915112345678",
                    "address": "Hauptstr. 5, 10115 Berlin",
                    "lat": 52.5321,
                    "lon": 13.3849,
                    "due_date": "2026-11-24",
                    "time_windows": [
                        {
                            "start": "2026-11-24T08:00:00Z",
                            "end": "2026-11-24T11:00:00Z",
                            "stop": "delivery",
                        }
                    ],
                    "driver": "Dana",
                    "eta": "2026-11-24T09:40:00Z",
                    "attempts": 1,
                    "tracking_url": "https://deliver.example.com/t/3q2-Xd5mQ0wq3Hh1Ycq4GQ5d",
                    "created_at": "2026-11-23T17:02:11Z",
                    "updated_at": "2026-11-24T09:05:43Z",
                }
            ]
        }
    )

    time_windows: list[WindowOut]
    driver: str | None = Field(description="The driver's first name, once assigned.")
    eta: datetime | None = Field(description="Expected arrival while the order is on a route.")


class OrderPage(BaseModel):
    orders: list[OrderOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class FieldError(BaseModel):
    field: str
    message: str


class BatchItem(BaseModel):
    index: int = Field(description="Position of the order in the request, from 0.")
    result: Literal["created", "existing", "error"]
    order: OrderOut | None = None
    errors: list[FieldError] = Field(default_factory=list)


class BatchResult(BaseModel):
    created: int
    existing: int
    failed: int
    items: list[BatchItem]


class DriverOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "first_name": "Dana",
                    "on_shift": True,
                    "last_seen_at": "2026-11-24T09:05:43Z",
                    "load": 7,
                }
            ]
        }
    )

    id: int
    first_name: str
    on_shift: bool
    last_seen_at: datetime | None
    load: int = Field(description="Orders assigned to her and not yet finished.")


class PlanFiguresOut(BaseModel):
    drivers: int = Field(description="Drivers with stops.")
    stops: int
    paid_hours: float = Field(description="Leaving to returning, waits and breaks included.")
    drive_hours: float
    km: float
    cost: float = Field(description="paid_hours × cost_per_hour + km × cost_per_km.")


class DriverPlanOut(PlanFiguresOut):
    id: int
    first_name: str


class PlanOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-24T09:00:00Z",
                    "cost_per_hour": 20.0,
                    "cost_per_km": 0.3,
                    "total": {"drivers": 1, "stops": 2, "paid_hours": 0.26, "drive_hours": 0.093,
                              "km": 2.224, "cost": 5.87},
                    "drivers": [{"id": 3, "first_name": "Dana", "drivers": 1, "stops": 2,
                                 "paid_hours": 0.26, "drive_hours": 0.093, "km": 2.224,
                                 "cost": 5.87}],
                }
            ]
        }
    )  # fmt: skip

    at: datetime = Field(description="The plan is timed from this moment.")
    cost_per_hour: float
    cost_per_km: float
    total: PlanFiguresOut
    drivers: list[DriverPlanOut]


class SignatureOut(BaseModel):
    """A signature drawn on the pad: the recipient's name, its PNG and SVG (signed links, valid
    as long as `photo_url`'s), each file's SHA-256, when and where it was signed."""

    recipient_name: str | None
    signed_at: datetime
    lat: float | None
    lon: float | None
    png_url: str
    png_sha256: str | None
    svg_url: str
    svg_sha256: str | None
    expires_at: datetime


class ProofOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "photo",
                    "captured_at": "2026-11-24T09:41:02Z",
                    "recipient_name": None,
                    "photo_url": "https://deliver.example.com/proofs/17?expires=1795513262"
                    "&signature=9f2c…",
                    "photo_expires_at": "2026-11-24T10:41:02Z",
                }
            ]
        }
    )

    kind: ProofKind
    captured_at: datetime
    recipient_name: str | None
    photo_url: str | None = Field(description="Signed link to the photo; no API key needed.")
    photo_expires_at: datetime | None = Field(description="When `photo_url` stops working.")
    signature: SignatureOut | None = Field(
        default=None, description="The signature drawn on the pad, when there is one."
    )


class Problem(BaseModel):
    """An error with a sentence a person can act on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "There is no order 7."}]})

    detail: str
