"""SQLModel tables. Importing this package registers every table on `SQLModel.metadata`."""

from core.models.access import (
    ApiIdempotencyKey,
    ApiKey,
    GeocodeCacheEntry,
    InitDataUse,
    Invite,
    WebLink,
)
from core.models.alerts import OpenAlert
from core.models.chats import ChatIdentity, ConversationState
from core.models.enums import (
    Channel,
    JobOutcome,
    OrderKind,
    OrderStatus,
    OutboxStatus,
    ProofKind,
    Role,
    RouteStatus,
    ShiftState,
    StopKind,
    VehicleType,
)
from core.models.files import SpooledFile
from core.models.inbound import InboundBody, InboundSeen
from core.models.jobs import JobRun
from core.models.orders import (
    AppendOnlyError,
    Order,
    OrderEvent,
    OrderWindow,
    is_tracking_token,
    order_ref,
    tracking_url,
)
from core.models.outbox import OutboxMessage, SentMessage
from core.models.people import Customer, Depot, Driver, Member, MemberRole, Shift
from core.models.placements import Placement
from core.models.road import LocationPing, Proof
from core.models.routes import PlannedBreak, Route, RouteStop, open_stop
from core.models.types import session_clock, session_time
from core.models.webhooks import WebhookAttempt, WebhookDelivery

__all__ = [
    "ApiIdempotencyKey",
    "ApiKey",
    "AppendOnlyError",
    "Channel",
    "ChatIdentity",
    "ConversationState",
    "Customer",
    "Depot",
    "Driver",
    "GeocodeCacheEntry",
    "InboundBody",
    "InboundSeen",
    "InitDataUse",
    "Invite",
    "JobOutcome",
    "JobRun",
    "LocationPing",
    "Member",
    "MemberRole",
    "OpenAlert",
    "Order",
    "OrderEvent",
    "OrderKind",
    "OrderStatus",
    "OrderWindow",
    "OutboxMessage",
    "OutboxStatus",
    "Placement",
    "PlannedBreak",
    "Proof",
    "ProofKind",
    "Role",
    "Route",
    "RouteStatus",
    "RouteStop",
    "SentMessage",
    "Shift",
    "ShiftState",
    "SpooledFile",
    "StopKind",
    "VehicleType",
    "WebLink",
    "WebhookAttempt",
    "WebhookDelivery",
    "is_tracking_token",
    "open_stop",
    "order_ref",
    "session_clock",
    "session_time",
    "tracking_url",
]
