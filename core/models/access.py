"""Ways in: invite links, API keys (hashed), and the geocoding cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import Role
from core.models.types import JSON, Stamped, UTCDateTime, str_enum


class Invite(SQLModel, table=True):
    """A single-use deep-link token granting a role; only its SHA-256 is stored."""

    __tablename__ = "invites"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    role: Role = Field(sa_type=str_enum(Role))
    created_by: int | None = Field(default=None, foreign_key="members.id")
    created_at: datetime = Stamped()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by: int | None = Field(default=None, foreign_key="members.id")


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=12, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Stamped()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # merchant webhooks: status changes are POSTed here, signed with the secret
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_secret: str | None = Field(default=None, max_length=100)
    webhook_all_orders: bool = False  # every order's changes, not only those made with this key


class ApiIdempotencyKey(SQLModel, table=True):
    """An `Idempotency-Key` an API client sent with a new order: the same key again answers
    with the same order. Kept a day (`core.merchants.apikeys.IDEMPOTENCY_TTL`)."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "key", name="uq_api_idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_keys.id", ondelete="CASCADE")
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE")
    created_at: datetime = Stamped(index=True)


class GeocodeCacheEntry(SQLModel, table=True):
    __tablename__ = "geocode_cache"
    __table_args__ = (sa.UniqueConstraint("provider", "query", name="uq_geocode_provider_query"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=40)
    query: str = Field(max_length=500)
    results: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Stamped()


class WebLink(SQLModel, table=True):
    """A signed link to a staff web view (the signature pad, later the driver's page and the
    dispatcher's board): one purpose, one person, maybe one order; expires; can be revoked. The
    link carries `id.expires.HMAC`; this row says what it is for and whether it still holds."""

    __tablename__ = "web_links"

    id: int | None = Field(default=None, primary_key=True)
    purpose: str = Field(max_length=32)
    member_id: int = Field(foreign_key="members.id", index=True, ondelete="CASCADE")
    order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)
    # set when the link opens as a Telegram Mini App: its initData must come from this user
    telegram_user_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = Stamped()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InitDataUse(SQLModel, table=True):
    """A Telegram Mini App initData already acted on (by its hash): a replay is refused."""

    __tablename__ = "init_data_uses"

    hash: str = Field(primary_key=True, max_length=64)
    used_at: datetime = Field(sa_type=UTCDateTime)
