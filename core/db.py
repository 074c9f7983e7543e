"""Engine and sessions. Nothing is built at import time: create a `Database` from a URL."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.clock import Clock, pace, system_clock
from core.models.types import CLOCK_OPTION

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "lastmile_read_only"
T = TypeVar("T")
LOST_RACE = {"40001", "40P01"}  # serialization failure, deadlock detected
# PostgreSQL refusing or dropping connections: class 08, shutting down or starting up, full
PG_UNAVAILABLE = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)
SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
)
NETWORK_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database (or Redis) cannot be reached now: a connection refused,
    reset, lost or timed out, no connection left in the pool, PostgreSQL shutting down or starting
    up, an SQLite file locked by another process past the busy timeout or unreadable. Trying again
    later can succeed. Anything else (a constraint, bad SQL, a missing table, a bug) would fail
    the same way again. Causes (`raise ... from`) are followed through SQLAlchemy's wrapping of
    the driver's errors only: another library's error caused by a timeout (a Telegram request
    that timed out, say) is not the database's."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, (sa.exc.TimeoutError, *PG_UNAVAILABLE, *REDIS_UNAVAILABLE)):
            return True
        if isinstance(error, sqlite3.OperationalError):
            return str(error).lower().startswith(SQLITE_UNAVAILABLE)
        if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
            return True  # raised as they are while connecting (the pool does not wrap them)
        if isinstance(error, OSError) and error.errno in NETWORK_ERRNOS:
            return True
        if not type(error).__module__.startswith("sqlalchemy"):
            return False
        error = error.__cause__
    return False


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and transactions that take the write lock up front.

    pysqlite's own transaction handling starts transactions late and breaks SAVEPOINT and
    transactional DDL; we turn it off and emit BEGIN IMMEDIATE ourselves (SQLAlchemy's
    documented recipe), so two writers queue on the busy timeout instead of one failing
    with "database is locked" when it upgrades a read snapshot to a write.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 20, max_overflow: int = 20
) -> AsyncEngine:
    if is_sqlite(url):
        ensure_sqlite_dir(url)
        engine = create_async_engine(url, echo=echo)
        _configure_sqlite(engine)
        return engine
    # a pool as large as the requests served at once, so busy moments do not open connections
    return create_async_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow
    )


def _sqlstate(exc: BaseException) -> str:
    return (getattr(exc.orig, "sqlstate", None) or "") if isinstance(exc, DBAPIError) else ""


def lost_race(exc: BaseException) -> bool:
    """Whether the database gave up a transaction for another's sake (deadlock, serialization):
    running it again can succeed."""
    return _sqlstate(exc) in LOST_RACE


async def retrying(
    work: Callable[[], Awaitable[T]],
    *,
    also: tuple[type[BaseException], ...] = (),
    attempts: int = 3,
) -> T:
    """`work()` (which opens its own transactions), run again when it lost a race: a deadlock,
    a serialization failure, or one of `also` (a concurrent transaction committed first). The
    last attempt's error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as exc:
            if attempt == attempts or not (lost_race(exc) or isinstance(exc, also)):
                raise
            await asyncio.sleep(random.uniform(0, 0.05 * attempt))  # out of each other's way
    raise AssertionError("unreachable")


class Database:
    """The engine and its session factory; one per process. It owns the service's clock:
    timestamp columns left unset are stamped from it when their rows are inserted."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        clock: Clock = system_clock,
        pool_size: int = 20,
        max_overflow: int = 20,
    ) -> None:
        self.url = url
        self.clock = clock
        self.engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.engine.sync_engine.update_execution_options(**{CLOCK_OPTION: self})
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._writer = asyncio.Lock() if is_sqlite(url) else None
        self._writer_task: asyncio.Task[Any] | None = None
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        readers = self.engine.execution_options(**{READ_ONLY: True})
        self.reads = async_sessionmaker(readers, class_=AsyncSession, expire_on_commit=False)
        """Sessions that only read. On SQLite they take no write lock (a plain BEGIN in WAL
        mode), so a long read never holds up writers; elsewhere they are ordinary sessions."""

    def now(self) -> datetime:
        """The time on the service's clock."""
        return self.clock()

    def span(self, real: timedelta) -> timedelta:
        """How much passes on the service's clock while `real` passes on the wall. Leases are
        real durations (how long a holder may work before another takes over), stored as times
        on the service's clock: on the demo's accelerated clock they stretch with its speed."""
        return real * pace(self.clock)

    def carry(self, key: str, value: object) -> None:
        """Put `value` in the `info` of every session opened from now on (values built once by
        the composition root that the code inside a transaction needs, e.g. its policy)."""
        self.sessions.kw.setdefault("info", {})[key] = value
        self.reads.kw.setdefault("info", {})[key] = value

    def use_clock(self, clock: Clock) -> None:
        """Read the time from `clock` from now on (the composition root's choice)."""
        self.clock = clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error.

        On SQLite, writers of this process queue on an asyncio lock, first come first served:
        SQLite's own busy wait sleeps and retries, which under load left some writers waiting
        for seconds."""
        if self._writer is None:
            async with self.sessions() as session, session.begin():
                yield session
            self._committed(session)
            return
        task = asyncio.current_task()
        if self._writer_task is task:
            raise RuntimeError("a transaction is already open in this task; nest none")
        async with self._writer:
            self._writer_task = task
            try:
                async with self.sessions() as session, session.begin():
                    yield session
            finally:
                self._writer_task = None
        self._committed(session)

    def on_commit(self, topic: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(session.info)` after each commit of a transaction that marked `topic`
        in its session's `info["topics"]` (e.g. the autopilot, woken when an order starts
        waiting)."""
        self._listeners.setdefault(topic, []).append(callback)

    def _committed(self, session: AsyncSession) -> None:
        for topic in session.info.pop("topics", ()):
            for callback in self._listeners.get(topic, ()):
                callback(session.info)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
