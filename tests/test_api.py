"""The REST API over real HTTP: the app under uvicorn, an httpx client, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.clock import system_clock
from core.config import Settings, normalize_database_url
from core.db import Database
from core.merchants import apikeys
from core.models import ApiKey, Customer, Order, OrderStatus
from tests.conftest import POSTGRES_URL, scratch_postgres, serve, sqlite_url
from tests.factories import add_driver, count, move, new_order
from tests.test_settings import lastmile
from web.app import create_app

S = OrderStatus
BASE = "https://deliver.example.com"
ORDER = {
    "external_ref": "A-1",
    "customer_name": "Ana Lima",
    "customer_phone": "+4915112345678",
    "address": "Hauptstr. 5, Berlin",
    "lat": 52.52,
    "lon": 13.40,
    "time_windows": [{"start": "2026-11-24T09:00:00+01:00", "end": "2026-11-24T12:00:00+01:00"}],
}


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        app={"base_url": BASE, "data_dir": tmp_path},
        _env_file=None,  # type: ignore[call-arg]
    )
    _, secret = await apikeys.create_key(db, "shop")
    async with serve(create_app(settings, db)) as base:
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=f"{base}/api/v1", headers=headers) as client:
            yield client


def fields(response: httpx.Response) -> dict[str, str]:
    """field path → message, from a 422 answer."""
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in e["loc"][1:]): e["msg"] for e in response.json()["detail"]}


async def test_create_get_and_list(api: httpx.AsyncClient):
    created = await api.post("/orders", json=ORDER)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "new"
    assert order["external_ref"] == "A-1"
    assert order["customer_name"] == "Ana Lima"
    assert order["customer_phone"] == "+4915112345678"
    assert order["time_windows"] == [
        {"start": "2026-11-24T08:00:00Z", "end": "2026-11-24T11:00:00Z", "stop": "delivery"}
    ]
    assert re.fullmatch(rf"{BASE}/t/[\w-]{{24}}", order["tracking_url"])
    assert order["driver"] is None and order["eta"] is None and order["attempts"] == 0

    got = await api.get(f"/orders/{order['id']}")
    assert got.status_code == 200 and got.json() == order
    again = await api.post("/orders", json=ORDER)  # the same external_ref: nothing new
    assert again.status_code == 200 and again.json()["id"] == order["id"]

    listed = await api.get("/orders", params={"external_ref": "A-1"})
    assert [o["id"] for o in listed.json()["orders"]] == [order["id"]]
    assert (await api.get("/orders", params={"status": "delivered"})).json()["orders"] == []


async def test_pagination_with_cursor(api: httpx.AsyncClient):
    ids = []
    for n in range(5):
        response = await api.post("/orders", json={**ORDER, "external_ref": f"P-{n}"})
        ids.append(response.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/orders", params=params)).json()
        seen += [o["id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


async def test_idempotency_key(api: httpx.AsyncClient, db: Database):
    body = {**ORDER, "external_ref": None}
    headers = {"Idempotency-Key": "k-1"}
    first = await api.post("/orders", json=body, headers=headers)
    second = await api.post("/orders", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert await count(db, Order) == 1

    other = await api.post("/orders", json={**body, "address": "Elsewhere 1"}, headers=headers)
    assert other.status_code == 409
    assert "k-1" in other.json()["detail"]
    assert await count(db, Order) == 1

    fresh = await api.post("/orders", json=body, headers={"Idempotency-Key": "k-2"})
    assert fresh.status_code == 201 and await count(db, Order) == 2


async def test_concurrent_retries_make_one_order(api: httpx.AsyncClient, db: Database):
    body = {**ORDER, "external_ref": None}
    answers = await asyncio.gather(
        *(api.post("/orders", json=body, headers={"Idempotency-Key": "same"}) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count(db, Order) == 1


async def test_batch_reports_each_order(api: httpx.AsyncClient, db: Database):
    await api.post("/orders", json={**ORDER, "external_ref": "B-0"})
    batch = [
        {**ORDER, "external_ref": "B-0"},
        {**ORDER, "external_ref": "B-1"},
        {**ORDER, "external_ref": "B-2", "lat": 95},
        {**ORDER, "external_ref": "B-3", "customer_phone": "12"},
        {**ORDER, "external_ref": "B-1"},
        "not an order",
    ]
    response = await api.post("/orders/batch", json={"orders": batch[:5]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert [i["result"] for i in result["items"]] == [
        "existing",
        "created",
        "error",
        "error",
        "existing",
    ]
    assert (result["created"], result["existing"], result["failed"]) == (1, 2, 2)
    assert result["items"][2]["errors"][0]["field"] == "lat"
    assert result["items"][3]["errors"][0]["field"] == "customer_phone"
    assert result["items"][1]["order"]["external_ref"] == "B-1"
    assert await count(db, Order) == 2

    assert (await api.post("/orders/batch", json={"orders": batch})).status_code == 422
    assert (await api.post("/orders/batch", json={"orders": []})).status_code == 422
    too_many = {"orders": [ORDER] * 501}
    assert "orders" in fields(await api.post("/orders/batch", json=too_many))


async def test_cancel_reschedule_and_refusals(api: httpx.AsyncClient, db: Database):
    order_id = (await api.post("/orders", json=ORDER)).json()["id"]
    cancelled = await api.post(f"/orders/{order_id}/cancel", json={"reason": "changed mind"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await api.post(f"/orders/{order_id}/cancel")
    assert again.status_code == 409
    # named by the shop's own reference, as everywhere a person reads it
    assert again.json()["detail"].startswith(f"Order {ORDER['external_ref']} is cancelled already")

    driver = await add_driver(db, "Dana Berg", 5001)
    failed = await new_order(db, ref="F-1")
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.FAILED):
        await move(db, failed.id, target, driver.id)
    window = {"start": "2026-11-25T14:00:00Z", "end": "2026-11-25T17:00:00Z"}
    response = await api.post(f"/orders/{failed.id}/reschedule", json={"time_windows": [window]})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rescheduled"
    assert response.json()["time_windows"] == [{**window, "stop": "delivery"}]

    new = (await api.post("/orders", json={**ORDER, "external_ref": "N-1"})).json()["id"]
    refused = await api.post(f"/orders/{new}/reschedule", json={"time_windows": [window]})
    assert refused.status_code == 409 and "cannot be rescheduled" in refused.json()["detail"]

    delivered = await new_order(db, ref="D-1")
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED, S.DELIVERED):
        await move(db, delivered.id, target, driver.id)
    refused = await api.post(f"/orders/{delivered.id}/cancel")
    assert refused.status_code == 409 and "delivered already" in refused.json()["detail"]


async def test_not_found(api: httpx.AsyncClient):
    assert (await api.get("/orders/999")).json() == {"detail": "There is no order 999."}
    assert (await api.get("/orders/999")).status_code == 404
    assert (await api.post("/orders/999/cancel")).status_code == 404
    assert (await api.get("/orders/99999999999")).status_code == 422


async def test_drivers(api: httpx.AsyncClient, db: Database):
    driver = await add_driver(db, "Dana Berg", 5001)
    order = await new_order(db)
    await move(db, order.id, S.ASSIGNED, driver.id)
    response = await api.get("/drivers")
    assert response.status_code == 200
    assert response.json() == [
        {"id": driver.id, "first_name": "Dana", "on_shift": False, "last_seen_at": None, "load": 1}
    ]
    got = (await api.get(f"/orders/{order.id}")).json()
    assert got["driver"] == "Dana" and got["status"] == "assigned"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"lat": 95}, "lat", "less than or equal to 90"),
        ({"customer_name": ""}, "customer_name", "at least 1 character"),
        ({"customer_name": "   "}, "customer_name", "at least 1 character"),
        (
            {"time_windows": [{"start": "2026-11-24T12:00:00Z", "end": "2026-11-24T09:00:00Z"}]},
            "time_windows.0",
            "end must be after start",
        ),
        (
            {"time_windows": [{"start": "2026-11-24T09:00:00", "end": "2026-11-24T12:00:00"}]},
            "time_windows.0.start",
            "timezone",
        ),
        ({"customer_phone": "12"}, "customer_phone", "is not a phone number"),
        ({"lat": None}, "", "give both lat and lon"),
        ({"customer_name": "x\x00y"}, "customer_name", "NUL"),
        ({"units": 10**12}, "units", "less than or equal to"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)
async def test_422_names_the_field(api: httpx.AsyncClient, change, field, words):
    problems = fields(await api.post("/orders", json={**ORDER, **change}))
    assert field in problems, problems
    assert words in problems[field]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 10000}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "99999999999"}, "cursor"),
        ({"date": "tomorrow"}, "date"),
    ],
)
async def test_422_for_bad_list_parameters(api: httpx.AsyncClient, params, field):
    assert field in fields(await api.get("/orders", params=params))


async def test_keys(api: httpx.AsyncClient, db: Database):
    bare = {"Authorization": ""}
    wrong = {"Authorization": "Bearer lm_00000000_nope"}
    for headers in (bare, wrong, {**bare, "X-API-Key": "x"}, {"Authorization": "Basic eDp5"}):
        response = await api.get("/orders", headers=headers)
        assert response.status_code == 401
        assert "API key" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
    key, secret = await apikeys.create_key(db, "second")
    ok = await api.get("/orders", headers={"Authorization": "", "X-API-Key": secret})
    assert ok.status_code == 200
    await apikeys.revoke(db, key.prefix)
    revoked = await api.get("/orders", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401


async def test_last_used_is_recorded_at_most_once_a_minute(db: Database):
    key, secret = await apikeys.create_key(db, "shop")
    now = system_clock()
    assert (await apikeys.authenticate(db, secret, now=now)).id == key.id
    await apikeys.authenticate(db, secret, now=now + timedelta(seconds=30))
    async with db.reads() as session:
        assert (await session.get(ApiKey, key.id)).last_used_at == now
    await apikeys.authenticate(db, secret, now=now + timedelta(seconds=61))
    async with db.reads() as session:
        stored = (await session.exec(select(ApiKey))).one()
    assert stored.last_used_at == now + timedelta(seconds=61)
    assert secret not in stored.key_hash and len(stored.key_hash) == 64


async def test_cli_creates_and_revokes_keys(clean_env, tmp_path: Path):
    if POSTGRES_URL:
        async with scratch_postgres(normalize_database_url(POSTGRES_URL)) as url:
            await cli_round_trip({**clean_env, "DATABASE_URL": url}, tmp_path, url)
    await cli_round_trip(clean_env, tmp_path, sqlite_url(tmp_path / "data" / "lastmile.db"))


async def cli_round_trip(env: dict[str, str], cwd: Path, url: str) -> None:
    created = await asyncio.to_thread(lastmile, ["apikey", "create", "Shop A"], env, cwd)
    assert created.returncode == 0, created.stderr
    prefix, secret = re.search(r"lm_([0-9a-f]{8})_\S+", created.stdout).group(1, 0)
    assert f"API key {prefix} (Shop A) created" in created.stdout
    db = Database(url)
    try:
        assert (await apikeys.authenticate(db, secret)) is not None
        await cli_webhook(env, cwd, db, prefix)
        revoked = await asyncio.to_thread(lastmile, ["apikey", "revoke", prefix], env, cwd)
        assert revoked.returncode == 0, revoked.stderr
        assert f"API key {prefix} (Shop A) revoked" in revoked.stdout
        assert (await apikeys.authenticate(db, secret)) is None
    finally:
        await db.dispose()
    unknown = await asyncio.to_thread(lastmile, ["apikey", "revoke", "ffffffff"], env, cwd)
    assert unknown.returncode == 1
    assert "no API key with prefix 'ffffffff'" in unknown.stderr


async def cli_webhook(env: dict[str, str], cwd: Path, db: Database, prefix: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return lastmile(["apikey", "webhook", prefix, *args], env, cwd)

    plain = await asyncio.to_thread(run, "http://shop.example.com/hook")
    assert plain.returncode == 1 and "must use https://" in plain.stderr
    neither = await asyncio.to_thread(run)
    assert neither.returncode == 2 and "give a URL, or --off" in neither.stderr
    assert (await apikeys.by_prefix(db, prefix)).webhook_url is None  # nothing changed

    set_ = await asyncio.to_thread(run, "https://shop.example.com/hook", "--all-orders")
    assert set_.returncode == 0, set_.stderr
    secret = re.search(r"Signing secret: (whsec_\S+)", set_.stdout).group(1)
    key = await apikeys.by_prefix(db, prefix)
    assert (key.webhook_url, key.webhook_all_orders, key.webhook_secret) == (
        "https://shop.example.com/hook",
        True,
        secret,
    )
    off = await asyncio.to_thread(run, "--off")
    assert off.returncode == 0 and "switched off" in off.stdout
    key = await apikeys.by_prefix(db, prefix)
    assert key.webhook_url is None and key.webhook_secret == secret  # kept for a later URL


async def test_the_customers_language_is_kept(api: httpx.AsyncClient, db: Database):
    created = await api.post("/orders", json={**ORDER, "customer_language": "de"})
    assert created.status_code == 201, created.text
    async with db.reads() as session:
        order = await session.get(Order, created.json()["id"])
        customer = await session.get(Customer, order.customer_id)
    assert customer.language == "de"
    for bad in ("german", "DE", "d", "de_DE", ""):
        refused = await api.post(
            "/orders", json={**ORDER, "external_ref": "A-2", "customer_language": bad}
        )
        assert "customer_language" in fields(refused), bad
    assert await count(db, Order) == 1
