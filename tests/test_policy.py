"""Values built once from the settings live in what `Services.build` returns, not in modules:
two services in one process (two instances in a test, an app and a CLI command) keep their own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from core.bootstrap import Services
from core.config import Settings
from core.db import Database
from core.merchants import apikeys, deliveries
from core.models import WebhookDelivery
from tests.factories import new_order


def settings(tmp_path: Path, base_url: str, retry_hours: int, quiet: str) -> Settings:
    return Settings(
        app={"base_url": base_url, "data_dir": tmp_path},
        webhooks={"retry_hours": retry_hours, "allow_private": True, "require_https": False},
        notify={"quiet_hours": quiet},
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_each_service_keeps_its_own_webhook_policy(database_url: str, tmp_path: Path):
    first_db, second_db = Database(database_url), Database(database_url)
    try:
        first = Services.build(settings(tmp_path, "https://one.example", 2, "21-8"), first_db)
        second = Services.build(settings(tmp_path, "https://two.example", 30, ""), second_db)
        key, _ = await apikeys.create_key(first_db, "shop")
        assert key.id is not None
        url, rules = "http://127.0.0.1:9/hook", first.settings.webhooks
        await deliveries.set_url(first_db, key.id, url, all_orders=True, rules=rules)

        await new_order(first.db, ref="ONE")  # after `second` was built
        await new_order(second.db, ref="TWO")
        async with first_db.reads() as session:
            rows = list(await session.exec(select(WebhookDelivery)))
        by_ref = {("ONE" if '"ONE"' in r.body else "TWO"): r for r in rows}
        assert "https://one.example/t/" in by_ref["ONE"].body
        assert by_ref["ONE"].retry_until - by_ref["ONE"].created_at == timedelta(hours=2)
        assert "https://two.example/t/" in by_ref["TWO"].body
        assert by_ref["TWO"].retry_until - by_ref["TWO"].created_at == timedelta(hours=30)
    finally:
        await first.close()
        await second.close()
        await first_db.dispose()
        await second_db.dispose()
