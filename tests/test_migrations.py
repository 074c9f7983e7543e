"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from core.config import normalize_database_url
from core.db import create_engine
from core.migrations import pending, upgrade
from tests.conftest import POSTGRES_URL, scratch_postgres, sqlite_url


async def differences(url: str) -> list:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}),
                    SQLModel.metadata,
                )
            )
    finally:
        await engine.dispose()


async def check_empty_database(url: str) -> None:
    assert await pending(url), "an empty database should have migrations to apply"
    assert await differences(url), "an empty database should differ from the models"
    await upgrade(url)
    assert await pending(url) == []
    assert await differences(url) == []
    await upgrade(url)  # a second run is a no-op
    assert await differences(url) == []


def test_upgrade_head_on_an_empty_sqlite_file(tmp_path: Path):
    path = tmp_path / "nested" / "dir" / "lastmile.db"
    asyncio.run(check_empty_database(sqlite_url(path)))
    assert path.exists()


@pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set")
def test_upgrade_head_on_an_empty_postgres_database():
    async def main() -> None:
        async with scratch_postgres(POSTGRES_URL) as url:
            await check_empty_database(normalize_database_url(url))

    asyncio.run(main())


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path):
    async def main() -> tuple[str, int]:
        engine = create_engine(sqlite_url(tmp_path / "x.db"))
        try:
            async with engine.connect() as connection:
                mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
                keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
                return mode, keys
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == ("wal", 1)
