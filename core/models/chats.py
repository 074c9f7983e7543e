"""Chat identities of channels other than Telegram, and conversation state per chat.

A Telegram identity stays on `members.telegram_*` (existing data keeps working unmoved); every
other channel (the sandbox, later WhatsApp) keeps its chats here. `core.people.identities`
reads and writes both behind one type, `ChatRef`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import Channel
from core.models.types import JSON, Stamped, UTCDateTime, str_enum


class ChatIdentity(SQLModel, table=True):
    """One person's chat on one channel: who they are there, and where to write to them."""

    __tablename__ = "chat_identities"
    __table_args__ = (
        sa.UniqueConstraint("channel", "external_id", name="uq_chat_identities_external"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel = Field(sa_type=str_enum(Channel))
    external_id: str = Field(max_length=128)
    chat_id: str = Field(max_length=128)
    member_id: int = Field(foreign_key="members.id", index=True, ondelete="CASCADE")
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # when the person last wrote to us here (WhatsApp: free-form messages only within 24 h of it)
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Stamped()


class ConversationState(SQLModel, table=True):
    """Where a chat is in a multi-step conversation (`/neworder`, a proof, …), until it expires.
    Used when no Redis is configured."""

    __tablename__ = "conversation_states"

    channel: Channel = Field(sa_type=str_enum(Channel), primary_key=True)
    chat_id: str = Field(max_length=128, primary_key=True)
    step: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    expires_at: datetime = Field(sa_type=UTCDateTime)
