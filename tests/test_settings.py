"""Settings: every key documented, and a missing or invalid value stops with one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.pool import QueuePool

from core.config import Settings, SettingsProblem, env_name, load_settings
from core.db import Database
from tests.conftest import ROOT


def settings_keys() -> set[str]:
    keys = set()
    for group, field in Settings.model_fields.items():
        if isinstance(field.default, BaseModel):
            keys |= {env_name((group, name)) for name in type(field.default).model_fields}
        else:  # a key of its own (SANDBOX, SANDBOX_TOKEN)
            keys.add(env_name((group,)))
    return keys


def test_env_example_lists_every_key_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {}
    for number, line in enumerate(lines):
        if match := re.match(r"^([A-Z][A-Z0-9_]+)=", line):
            listed[match.group(1)] = number
            assert lines[number - 1].startswith("#"), f"{match.group(1)} has no comment above it"
    assert set(listed) == settings_keys()


def test_env_example_values_are_valid_defaults(tmp_path: Path, clean_env, monkeypatch):
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    for key in settings_keys():
        monkeypatch.delenv(key, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///data/lastmile.db"
    assert not settings.telegram.enabled and not settings.whatsapp.enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TELEGRAM_MODE": "webhook"}, "TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_MODE"),
        (
            {"WHATSAPP_ACCESS_TOKEN": "EAAG", "WHATSAPP_APP_SECRET": "s"},
            "WHATSAPP_PHONE_NUMBER_ID is required when WHATSAPP_ACCESS_TOKEN is set",
        ),
        ({"APP_PORT": "eighty"}, "APP_PORT is not a whole number"),
        ({"SANDBOX": "maybe"}, "SANDBOX is not true or false"),
        ({"SANDBOX_TOKEN": "short"}, "SANDBOX_TOKEN must be at least 16 characters long"),
        ({"APP_PORT": "70000"}, "APP_PORT must be at most 65535"),
        ({"APP_TIMEZONE": "Mars/Olympus"}, "APP_TIMEZONE is not a known time zone"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL names an unsupported database 'mysql'"),
        ({"DATABASE_URL": "lastmile.db"}, "DATABASE_URL is not a URL"),
        ({"TELEGRAM_MODE": "push"}, "TELEGRAM_MODE must be one of: 'polling' or 'webhook'"),
        ({"TELEGRAM_API_URL": "not a url"}, "TELEGRAM_API_URL"),
        ({"APP_PHONE_REGION": "XX"}, "APP_PHONE_REGION is not a known region"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
        ({"REDIS_URL": "redis://127.0.0.1:63a9/13"}, "REDIS_URL is not a Redis URL like"),
        ({"REDIS_URL": "redis://127.0.0.1:99999/13"}, "the port is not a number"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/thirteen"}, "the database 'thirteen' is not a"),
        ({"REDIS_URL": "redis://:6379/1"}, "REDIS_URL is not a Redis URL like redis://"),
        ({"TELEGRAM_RATE_PER_S": "0"}, "TELEGRAM_RATE_PER_S must be more than 0"),
        ({"TELEGRAM_CHAT_RATE_PER_S": "-1"}, "TELEGRAM_CHAT_RATE_PER_S must be more than 0"),
        ({"WHATSAPP_CHAT_RATE_PER_S": "0"}, "WHATSAPP_CHAT_RATE_PER_S must be more than 0"),
        ({"ORDERS_MAX_ATTEMPTS": "0"}, "ORDERS_MAX_ATTEMPTS must be at least 1"),
        ({"OUTBOX_LEASE_S": "0.5"}, "OUTBOX_LEASE_S must be at least 1"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE must be at least 1"),
        ({"DATABASE_POOL_SIZE": "many"}, "DATABASE_POOL_SIZE is not a whole number"),
        ({"DATABASE_MAX_OVERFLOW": "-1"}, "DATABASE_MAX_OVERFLOW must be at least 0"),
        ({"DATABASE_MAX_OVERFLOW": "501"}, "DATABASE_MAX_OVERFLOW must be at most 500"),
        ({"REPORTS_DAILY_AT": "25:00"}, "REPORTS_DAILY_AT is not a time of day like 20:00"),
        ({"REPORTS_DAILY_AT": "8pm"}, "REPORTS_DAILY_AT is not a time of day like 20:00"),
        ({"DISPATCH_PLAN_AT": "6.30"}, "DISPATCH_PLAN_AT is not a time of day like 20:00"),
        ({"ALERTS_UNASSIGNED_MINUTES": "0"}, "ALERTS_UNASSIGNED_MINUTES must be at least 1"),
        ({"ALERTS_UNASSIGNED_MINUTES": "soon"}, "ALERTS_UNASSIGNED_MINUTES is not a number"),
        ({"WHATSAPP_TEMPLATES": '{"a": {"name": "x"}}'}, 'WHATSAPP_TEMPLATES needs a "*" entry'),
        ({"WHATSAPP_TEMPLATES": "lastmile_update"}, "WHATSAPP_TEMPLATES is not JSON like"),
        ({"WHATSAPP_RATE_PER_S": "0"}, "WHATSAPP_RATE_PER_S must be more than 0"),
        (
            {"WEBHOOKS_TIMEOUT_S": "40"},
            "WEBHOOKS_TIMEOUT_S must be at most half of OUTBOX_LEASE_S (30)",
        ),
    ],
)
def test_bad_settings_name_the_key(monkeypatch, tmp_path, env, message):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsProblem) as problem:
        load_settings()
    assert message in str(problem.value)
    assert "\n" not in str(problem.value)


def test_a_longer_lease_allows_a_longer_webhook_timeout(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOKS_TIMEOUT_S", "40")
    monkeypatch.setenv("OUTBOX_LEASE_S", "80")
    settings = load_settings()
    assert (settings.webhooks.timeout_s, settings.outbox.lease.total_seconds()) == (40, 80)


def test_accepted_spellings_of_database_urls(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgres://me@db.local/lastmile")
    assert load_settings().database_url == "postgresql+asyncpg://me@db.local/lastmile"
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///x.db"


def lastmile(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lastmile", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "dotenv", "line"),
    [
        (
            {"TELEGRAM_MODE": "webhook"},
            "",
            "lastmile: configuration error: TELEGRAM_WEBHOOK_SECRET is required when "
            "TELEGRAM_MODE=webhook",
        ),
        (
            {},
            "APP_PORT=abc\n",
            "lastmile: configuration error: APP_PORT is not a whole number",
        ),
    ],
    ids=["missing", "invalid-in-dotenv"],
)
def test_the_program_stops_with_one_line_and_exit_code_2(clean_env, tmp_path, env, dotenv, line):
    (tmp_path / ".env").write_text(dotenv)
    result = lastmile(["db", "upgrade"], {**clean_env, **env}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()  # nothing was created


def test_the_database_pool_follows_the_settings(monkeypatch, tmp_path):
    """DATABASE_POOL_SIZE and DATABASE_MAX_OVERFLOW reach the PostgreSQL engine (no connection
    is made to build it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://me@127.0.0.1:1/none")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("DATABASE_MAX_OVERFLOW", "1")
    settings = load_settings()
    db = Database(
        settings.database_url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
    )
    pool = db.engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (3, 1)
