"""Shared fixtures. Database tests run on SQLite always and on PostgreSQL when TEST_POSTGRES_URL
is set; each test gets a migrated, empty database."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers the tables)
from core.config import normalize_database_url
from core.db import Database
from core.migrations import upgrade

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_postgres(base_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the server of `base_url`, dropped afterwards."""
    name = f"lastmile_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(base_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield str(make_url(base_url).set(database=name).render_as_string(hide_password=False))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "lastmile.db"
    asyncio.run(upgrade(sqlite_url(path)))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    assert POSTGRES_URL is not None
    url = normalize_database_url(POSTGRES_URL)
    asyncio.run(upgrade(url))
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if request.param == "sqlite":
        path = tmp_path / "lastmile.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return sqlite_url(path)
    url = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate_postgres(url))
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def serve(app: object, port: int | None = None) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 (a free port by default); yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # at most 10 s
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError("the test server did not start within 10 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a `lastmile` subprocess: no inherited Lastmile settings, a temp cwd."""
    prefixes = (
        "APP_",
        "DATABASE_",
        "REDIS_",
        "TELEGRAM_",
        "WHATSAPP_",
        "OSRM_",
        "GEOCODING_",
        "ORDERS_",
        "TRACKING_",
        "NOTIFY_",
        "WEBHOOKS_",
        "OUTBOX_",
        "REPORTS_",
        "ALERTS_",
        "STORAGE_",
        "SANDBOX",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["APP_DATA_DIR"] = str(tmp_path / "data")
    yield env
