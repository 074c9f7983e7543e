"""Which errors mean "the database is unreachable now, try again later" (core.db.unavailable),
made for real: PostgreSQL behind a proxy the test cuts, an SQLite file another connection
locks, an exhausted pool; and errors that do not (mistakes, bugs, other services' timeouts)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import SendMessage
from sqlalchemy.ext.asyncio import create_async_engine

from core.clock import system_clock
from core.db import Database, unavailable
from core.models import Member
from tests.conftest import POSTGRES_URL
from tests.fakes.tcp_proxy import proxy_for

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="TEST_POSTGRES_URL is not set")


async def failure(db: Database, statement: str = "SELECT 1") -> BaseException:
    try:
        async with db.transaction() as session:
            await session.exec(sa.text(statement))  # type: ignore[call-overload]
    except Exception as exc:
        return exc
    raise AssertionError(f"{statement!r} did not fail")


@needs_postgres
async def test_postgres_cut_off_is_unavailable_and_its_mistakes_are_not(postgres_url: str):
    async with proxy_for(postgres_url) as proxy:
        db = Database(proxy.url(postgres_url))
        try:
            async with db.transaction() as session:  # a pooled connection exists
                await session.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]
            proxy.cut()
            refused = await failure(db)
            assert unavailable(refused), repr(refused)
            assert proxy.refused >= 1
            proxy.restore()
            assert not unavailable(await failure(db, "SELECT no_such_column"))
            assert not unavailable(await failure(db, "SELECT 1/0"))
            # cut in the middle of a query
            slow = asyncio.create_task(failure(db, "SELECT pg_sleep(2)"))
            await asyncio.sleep(0.5)
            proxy.cut()
            lost = await slow
            assert isinstance(lost, sa.exc.DBAPIError) and unavailable(lost), repr(lost)
        finally:
            await db.dispose()


@needs_postgres
async def test_an_exhausted_pool_is_unavailable(postgres_url: str):
    engine = create_async_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with engine.connect() as held:
            await held.execute(sa.text("SELECT 1"))
            with pytest.raises(sa.exc.TimeoutError) as waited:
                async with engine.connect() as second:
                    await second.execute(sa.text("SELECT 1"))
        assert unavailable(waited.value)
    finally:
        await engine.dispose()


async def test_sqlite_locked_by_another_process_is_unavailable(sqlite_template: Path, tmp_path):
    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.1})
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # e.g. a backup or a CLI import holding the file
        with pytest.raises(sa.exc.OperationalError) as locked:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.insert(Member).values(name="x", language="en", created_at=system_clock())
                )
        assert "locked" in str(locked.value) and unavailable(locked.value)
        other.execute("ROLLBACK")
        with pytest.raises(sa.exc.OperationalError) as missing:
            async with engine.begin() as connection:
                await connection.execute(sa.text("SELECT * FROM no_such_table"))
        assert not unavailable(missing.value)  # a bug: trying again cannot help
        with pytest.raises(sa.exc.IntegrityError) as duplicate:
            async with engine.begin() as connection:
                for _ in range(2):
                    await connection.execute(
                        sa.insert(Member).values(
                            id=7, name="x", language="en", created_at=system_clock()
                        )
                    )
        assert not unavailable(duplicate.value)
    finally:
        other.close()
        await engine.dispose()


def test_plain_errors_are_not_unavailable():
    assert not unavailable(ValueError("bad input"))
    assert not unavailable(KeyError("order"))
    try:  # aiogram's error for a Telegram request that timed out: Telegram's, not the database's
        raise TelegramNetworkError(SendMessage(chat_id=1, text="x"), "Request timeout error") from (
            TimeoutError()
        )
    except TelegramNetworkError as exc:
        assert not unavailable(exc)
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError:
            raise RuntimeError("a bug while handling it")  # noqa: B904 (the point: no cause)
    except RuntimeError as exc:
        assert not unavailable(exc)  # only explicit causes count, not what it interrupted
