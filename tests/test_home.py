"""The root page over real HTTP: what runs, and how to enable the chat channels that do not."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from core.config import Settings
from core.db import Database
from tests.conftest import serve
from tests.telegram_harness import running_bot
from web.app import create_app


def channel(page: str, name: str) -> str:
    found = re.search(rf'<li[^>]*data-channel="{name}"[^>]*>(.*?)</li>', page, re.S)
    assert found, f"no {name} line on the page"
    return found.group(0)


async def test_without_channels_the_root_says_how_to_enable_each(db: Database, tmp_path: Path):
    settings = Settings(
        app={"base_url": "https://deliver.example.com", "data_dir": tmp_path, "timezone": "UTC"},
        _env_file=None,  # type: ignore[call-arg]
    )
    async with serve(create_app(settings, db)) as base, httpx.AsyncClient(base_url=base) as web:
        page = await web.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        text = page.text
        telegram = channel(text, "Telegram")
        assert 'data-running="false"' in telegram
        assert "TELEGRAM_BOT_TOKEN" in telegram and "TELEGRAM_MODE=webhook" in telegram
        whatsapp = channel(text, "WhatsApp")
        assert "WHATSAPP_ACCESS_TOKEN" in whatsapp and "WHATSAPP_APP_SECRET" in whatsapp
        assert "SANDBOX=true" in channel(text, "Sandbox")
        assert "make demo" in text
        assert "https://deliver.example.com/t/&lt;token&gt;" in text
        assert "automatic" in text  # DISPATCH_MODE=auto, the default
        for job in ("tracking.stale_locations", "reports.daily", "alerts.check"):
            assert f"<code>{job}</code>" in text
        for link in re.findall(r'href="(/[^"]*)"', text):  # every link it gives works
            assert (await web.get(link)).status_code == 200, link


async def test_with_telegram_the_root_says_it_runs(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path, mode="webhook") as bot, httpx.AsyncClient() as web:
        page = (await web.get(f"{bot.base_url}/")).text
    telegram = channel(page, "Telegram")
    assert 'data-running="true"' in telegram
    assert "on (webhook); Telegram posts updates to /webhooks/telegram" in telegram
    assert "@lastmile_test_bot" in telegram
    assert "not configured" not in telegram
    assert "not configured" in channel(page, "WhatsApp")
