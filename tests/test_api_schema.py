"""Schemathesis against the REST API's own OpenAPI document: whatever it sends, the API never
answers 5xx and every answer matches the documented schema. SQLite only: this is about the API
surface, not the database."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from core.config import Settings
from core.db import Database
from core.merchants import apikeys
from core.models import OrderStatus
from tests.conftest import free_port, serve, sqlite_url
from tests.factories import add_driver, move, new_order
from web.app import create_app

# Headers that frame the HTTP message itself: made up, they make a request uvicorn refuses (400)
# before the app sees it, which says nothing about the API.
FRAMING = {"content-length", "transfer-encoding", "host", "connection"}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


async def prepare(url: str) -> str:
    """A key, a driver and a few orders, so that reads and changes find something."""
    db = Database(url)
    try:
        _, secret = await apikeys.create_key(db, "schemathesis")
        driver = await add_driver(db, "Dana Berg", 5001)
        for n in range(3):
            order = await new_order(db, ref=f"S-{n}")
            await move(db, order.id, OrderStatus.ASSIGNED, driver.id)
        await new_order(db, ref="S-new")
    finally:
        await db.dispose()
    return secret


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple]:
    """The app under uvicorn in its own thread and event loop; yields (base URL, key, app)."""
    folder = tmp_path_factory.mktemp("schema")
    path = folder / "lastmile.db"
    shutil.copy(sqlite_template, path)
    url = sqlite_url(path)
    secret = asyncio.run(prepare(url))
    config = Settings(
        app={"base_url": "https://deliver.example.com", "data_dir": folder},
        database={"url": url},
        _env_file=None,  # type: ignore[call-arg]
    )
    # schemathesis makes up webhook URLs: their "receivers" answer 503 without any network
    down = httpx.MockTransport(lambda request: httpx.Response(503))
    app = create_app(config, webhook_transport=down)
    started, stop = threading.Event(), threading.Event()
    port = free_port()

    async def run() -> None:
        async with serve(app, port):
            started.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(20), "the app did not start"
    try:
        yield f"http://127.0.0.1:{port}", secret, app
    finally:
        stop.set()
        thread.join(20)


def test_api_never_fails_and_matches_its_schema(running):
    base, secret, app = running
    raw = app.openapi()
    raw["paths"] = {path: item for path, item in raw["paths"].items() if path.startswith("/api/")}
    schema = schemathesis.openapi.from_dict(raw)
    headers = {"Authorization": f"Bearer {secret}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15
    calls: list[int] = []
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=int(os.environ.get("API_SCHEMA_EXAMPLES", "25")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            for name in [n for n in case.headers or {} if n.lower() in FRAMING]:
                del case.headers[name]  # type: ignore[union-attr]
            response = case.call_and_validate(
                base_url=base, headers=headers, checks=CHECKS, timeout=10
            )
            calls.append(response.status_code)

        check()
    assert len(calls) > 100 and {200, 201, 422} <= set(calls), sorted(set(calls))
