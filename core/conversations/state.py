"""Where each chat is in a multi-step conversation, per (channel, chat), with an expiry.

In the database by default; in Redis when REDIS_URL is set (several instances share either).
An expired state does nothing: the person is told it expired and starts afresh."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import col

from core.db import Database
from core.models import ConversationState
from core.people.identities import ChatRef

KEY_PREFIX = "lastmile:conv:"
KEEP_EXPIRED = timedelta(days=1)  # an expired state is kept this long to say it expired


@dataclass(frozen=True)
class Step:
    """A conversation's step (`flow.step`, e.g. "proof.photo") and what it has gathered."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    expired: bool = False  # found, but past its expiry: only good for saying so


class StateStore(Protocol):
    async def get(self, chat: ChatRef, now: datetime) -> Step | None: ...
    async def put(self, chat: ChatRef, step: Step, now: datetime) -> None: ...
    async def clear(self, chat: ChatRef) -> None: ...
    async def close(self) -> None: ...


class DatabaseStates:
    def __init__(self, db: Database, ttl: timedelta) -> None:
        self.db, self.ttl = db, ttl

    async def get(self, chat: ChatRef, now: datetime) -> Step | None:
        async with self.db.reads() as session:
            row = await session.get(ConversationState, (chat.channel, chat.chat_id))
        if row is None:
            return None
        return Step(row.step, dict(row.data), expired=row.expires_at <= now)

    async def put(self, chat: ChatRef, step: Step, now: datetime) -> None:
        async with self.db.transaction() as session:
            row = await session.get(ConversationState, (chat.channel, chat.chat_id))
            if row is None:
                row = ConversationState(
                    channel=chat.channel, chat_id=chat.chat_id, step="", expires_at=now
                )
            row.step, row.data, row.expires_at = step.name, dict(step.data), now + self.ttl
            session.add(row)
            forgotten = col(ConversationState.expires_at) < now - KEEP_EXPIRED
            await session.exec(sa.delete(ConversationState).where(forgotten))  # long gone

    async def clear(self, chat: ChatRef) -> None:
        async with self.db.transaction() as session:
            row = await session.get(ConversationState, (chat.channel, chat.chat_id))
            if row is not None:
                await session.delete(row)

    async def close(self) -> None:
        return None


class RedisStates:
    def __init__(self, url: str, ttl: timedelta) -> None:
        from core.redis_pool import client

        self.redis = client(url, "states")
        self.ttl = ttl

    @staticmethod
    def key(chat: ChatRef) -> str:
        return f"{KEY_PREFIX}{chat.channel.value}:{chat.chat_id}"

    async def get(self, chat: ChatRef, now: datetime) -> Step | None:
        raw = await self.redis.get(self.key(chat))
        if raw is None:
            return None
        value = json.loads(raw)
        expired = datetime.fromisoformat(value["expires_at"]) <= now  # the service clock decides
        return Step(value["step"], value["data"], expired=expired)

    async def put(self, chat: ChatRef, step: Step, now: datetime) -> None:
        value = {"step": step.name, "data": step.data, "expires_at": (now + self.ttl).isoformat()}
        seconds = int((self.ttl + KEEP_EXPIRED).total_seconds())  # then Redis forgets it
        await self.redis.set(self.key(chat), json.dumps(value), ex=seconds)

    async def clear(self, chat: ChatRef) -> None:
        await self.redis.delete(self.key(chat))

    async def close(self) -> None:
        await self.redis.aclose()


def state_store(db: Database, redis_url: str | None, ttl: timedelta) -> StateStore:
    return RedisStates(redis_url, ttl) if redis_url else DatabaseStates(db, ttl)
