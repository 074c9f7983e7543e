"""The closed vocabularies of the domain, stored as their string values."""

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    DISPATCHER = "dispatcher"
    DRIVER = "driver"
    CUSTOMER = "customer"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    SANDBOX = "sandbox"


class ShiftState(StrEnum):
    OFF = "off"
    ON = "on"
    BREAK = "break"


class VehicleType(StrEnum):
    BICYCLE = "bicycle"
    SCOOTER = "scooter"
    CAR = "car"
    VAN = "van"
    TRUCK = "truck"


class OrderKind(StrEnum):
    DELIVERY = "delivery"
    PICKUP_DELIVERY = "pickup_delivery"


class OrderStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    PICKED_UP = "picked_up"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ARRIVED = "arrived"
    DELIVERED = "delivered"
    FAILED = "failed"
    RESCHEDULED = "rescheduled"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class ProofKind(StrEnum):
    NONE = "none"
    PHOTO = "photo"
    SIGNATURE = "signature"
    PIN = "pin"
    PHOTO_SIGNATURE = "photo+signature"  # a photo and a signature drawn on the pad, both


class StopKind(StrEnum):
    PICKUP = "pickup"
    DELIVERY = "delivery"


class RouteStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    DONE = "done"
    CANCELLED = "cancelled"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    SKIPPED = "skipped"


class JobOutcome(StrEnum):
    RUNNING = "running"  # started, not finished (or its instance died: see core.scheduler)
    OK = "ok"
    FAILED = "failed"
