"""Column types shared by the tables: UTC timestamps, string-backed enums, JSON."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.interfaces import ExecutionContext
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

CLOCK_OPTION = "lastmile_clock"
"""The execution option through which the `Database` hands itself (its clock) to the rows."""


class ClockSource(Protocol):
    """What a database offers about time (`core.db.Database`)."""

    def now(self) -> datetime: ...

    def span(self, real: timedelta) -> timedelta: ...


def stamp(context: ExecutionContext) -> datetime:
    """The insert-time default of a timestamp column: the time on the clock of the `Database`
    that runs the insert (one clock for the whole service: the demo's, a test's, the wall's)."""
    return _source(context.execution_options).now()


def _source(options: Mapping[str, Any]) -> ClockSource:
    source: ClockSource | None = options.get(CLOCK_OPTION)
    if source is None:
        raise RuntimeError("rows are written through core.db.Database, which knows the clock")
    return source


def Stamped(**column: Any) -> Any:
    """A timestamp stamped from the database's clock when the row is inserted, unless given.
    It reads None on an object not yet flushed."""
    return Field(default=None, sa_type=UTCDateTime, sa_column_kwargs={"default": stamp}, **column)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware.

    SQLite keeps no zone, PostgreSQL keeps `timestamptz`; this type makes both behave the same.
    Naive datetimes are refused: a naive time in a delivery system is a bug waiting for DST.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a time-zone aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_cls: type[enum.Enum]) -> sa.Enum:
    """Store an enum as its value in a VARCHAR (no native type, so adding a member is easy)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=24,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def session_clock(session: AsyncSession | Session) -> ClockSource:
    """The clock of the database `session` belongs to (see `stamp`)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    return _source(sync.get_bind().get_execution_options())


def session_time(session: AsyncSession | Session) -> datetime:
    """The time on the clock of the database `session` belongs to."""
    return session_clock(session).now()
