"""When the service cannot do its work, it says so in JSON: the database made unreachable (a TCP
proxy in front of PostgreSQL, cut by the test) answers 503 with `Retry-After` on the API and the
tracking page, which serve again once it is back; any other server error answers a JSON 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.db import Database
from core.merchants import apikeys
from tests.conftest import POSTGRES_URL, serve
from tests.fakes.tcp_proxy import Proxy, proxy_for
from tests.test_api import ORDER
from tests.test_tracking_page import day
from web.app import create_app


@pytest.mark.skipif(
    not POSTGRES_URL, reason="SQLite is a file in this process: there is no connection to cut"
)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_unreachable_database_answers_503_and_service_resumes(
    database_url: str, tmp_path: Path
):
    async with proxy_for(database_url) as proxy:
        await cut_off_and_back(proxy, Database(proxy.url(database_url)), tmp_path)


async def cut_off_and_back(proxy: Proxy, db: Database, tmp_path: Path) -> None:
    try:
        mine, _, _ = await day(db)
        _, secret = await apikeys.create_key(db, "shop")
        settings = Settings(app={"data_dir": tmp_path}, _env_file=None)  # type: ignore[call-arg]
        token = mine.tracking_token
        asks = [
            ("GET", f"/api/v1/orders/{mine.id}", None, 200),
            ("GET", "/api/v1/orders", None, 200),
            ("POST", "/api/v1/orders", ORDER, 201),
            ("GET", f"/t/{token}.json", None, 200),
            ("GET", f"/t/{token}", None, 200),
            ("GET", f"/t/{token}/qr.png", None, 200),
        ]
        headers = {"Authorization": f"Bearer {secret}"}
        async with (
            serve(create_app(settings, db)) as base,
            httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http,
        ):
            assert (await http.get("/healthz")).status_code == 200
            proxy.cut()
            for method, path, body, _ in asks:
                answer = await http.request(method, path, json=body)
                assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
                assert answer.headers["content-type"] == "application/json", path
                assert (
                    "try again" in answer.json()["detail"] and answer.headers["retry-after"] == "5"
                )
            assert (await http.get("/healthz")).status_code == 503

            proxy.restore()
            for method, path, body, status in asks:
                answer = await http.request(method, path, json=body)
                assert answer.status_code == status, (path, answer.status_code, answer.text[:200])
    finally:
        await db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_unexpected_error_answers_json(database_url: str, tmp_path: Path):
    """A table gone from under the running service (an operator's mistake): not an outage."""
    db = Database(database_url)
    try:
        mine, _, _ = await day(db)
        settings = Settings(app={"data_dir": tmp_path}, _env_file=None)  # type: ignore[call-arg]
        async with (
            serve(create_app(settings, db)) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            assert (await http.get(f"/t/{mine.tracking_token}.json")).status_code == 200
            async with db.engine.begin() as connection:
                await connection.exec_driver_sql("ALTER TABLE orders RENAME TO orders_gone")
            answer = await http.get(f"/t/{mine.tracking_token}.json")
        assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
        assert answer.json() == {
            "detail": "Something went wrong on our side; it is logged. Try again later."
        }
    finally:
        await db.dispose()
