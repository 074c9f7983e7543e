"""The `lastmile` command, run as a person runs it: a real process, real files, real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import httpx
import pytest
from PIL import Image
from sqlmodel import select

from core.clock import system_clock
from core.config import load_settings, normalize_database_url
from core.db import Database
from core.models import Invite, JobOutcome, JobRun, Order, Role
from tests.conftest import (
    FIXTURES,
    POSTGRES_URL,
    ROOT,
    free_port,
    scratch_postgres,
    serve,
    sqlite_url,
)
from tests.test_settings import lastmile
from web.app import create_app

MIGRATIONS = len(list((ROOT / "alembic" / "versions").glob("*.py")))


def start(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lastmile", "run", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(process: subprocess.Popen, port: int) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"lastmile run exited: {process.stdout.read()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.25)
    raise AssertionError("lastmile run did not answer /healthz within 60 s")


def stop(process: subprocess.Popen, how: signal.Signals = signal.SIGINT) -> str:
    process.send_signal(how)
    output, _ = process.communicate(timeout=30)
    return output


def run_and_check_health(
    env: dict[str, str], cwd: Path, how: signal.Signals = signal.SIGINT
) -> str:
    port = free_port()
    process = start(env, cwd, port)
    try:
        response = wait_healthy(process, port)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        root = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # was a 404
        assert root.status_code == 200
        assert "Lastmile is running" in root.text and 'href="/docs"' in root.text
        assert "set TELEGRAM_BOT_TOKEN to enable it" in root.text
    finally:
        output = stop(process, how)
    assert process.returncode == 0, output
    assert "stopped" in output
    return output


def test_run_on_embedded_defaults(clean_env, tmp_path: Path):
    output = run_and_check_health(clean_env, tmp_path)
    assert (tmp_path / "data" / "lastmile.db").exists()
    assert f"applying {MIGRATIONS} migration(s)" in output
    assert "Telegram: not configured; set TELEGRAM_BOT_TOKEN to enable it" in output
    assert "WhatsApp: not configured; set WHATSAPP_ACCESS_TOKEN" in output
    assert "Traceback" not in output
    second = run_and_check_health(clean_env, tmp_path, signal.SIGTERM)
    assert "applying" not in second


@pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set")
def test_run_on_postgres(clean_env, tmp_path: Path):
    async def main() -> None:
        async with scratch_postgres(normalize_database_url(POSTGRES_URL)) as url:
            env = {**clean_env, "DATABASE_URL": url}
            await asyncio.to_thread(run_and_check_health, env, tmp_path)

    asyncio.run(main())
    assert not (tmp_path / "data" / "lastmile.db").exists()


async def test_healthz_reports_an_unreachable_database(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    unreachable = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    try:
        async with serve(create_app(settings, unreachable)) as base, httpx.AsyncClient() as client:
            response = await client.get(f"{base}/healthz", timeout=10)
    finally:
        await unreachable.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"].startswith("error: ")


def test_db_upgrade_is_idempotent(clean_env, tmp_path: Path):
    first = lastmile(["db", "upgrade"], clean_env, tmp_path)
    assert (first.returncode, first.stdout.strip()) == (0, f"applied {MIGRATIONS} migration(s)")
    second = lastmile(["db", "upgrade"], clean_env, tmp_path)
    assert (second.returncode, second.stdout.strip()) == (0, "database is up to date")


def test_invite_needs_the_bot_username(clean_env, tmp_path: Path):
    result = lastmile(["invite", "--role", "driver"], clean_env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "lastmile: TELEGRAM_BOT_USERNAME is not set: invite links open your bot, so put its "
        "username (without @) in .env"
    ]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "driver", "--expires", "soon"], "'soon' is not a duration like 30m"),
        (["--role", "driver", "--expires", "365d"], "between 1 minute and 90 days"),
        (["--role", "customer"], "'customer' is not one of 'driver', 'dispatcher', 'owner'"),
    ],
)
def test_invite_bad_options(clean_env, tmp_path: Path, args, message):
    env = {**clean_env, "TELEGRAM_BOT_USERNAME": "lastmile_test_bot"}
    result = lastmile(["invite", *args], env, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "data" / "lastmile.db").exists()


def test_invite_prints_a_deep_link_and_writes_its_qr(clean_env, tmp_path: Path):
    env = {**clean_env, "TELEGRAM_BOT_USERNAME": "@lastmile_test_bot"}
    qr = tmp_path / "out" / "driver.png"
    result = lastmile(
        ["invite", "--role", "driver", "--expires", "2d", "--qr", str(qr)], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    link = next(line for line in result.stdout.splitlines() if line.startswith("https://"))
    parsed = urlparse(link)
    assert (parsed.netloc, parsed.path) == ("t.me", "/lastmile_test_bot")
    token = parse_qs(parsed.query)["start"][0]
    assert len(token) == 32 and len(token) <= 64  # 192 random bits; Telegram allows 64 chars
    with Image.open(qr) as image:
        assert image.format == "PNG" and image.size[0] == image.size[1] >= 200

    async def saved() -> Invite:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'lastmile.db'}")
        try:
            async with db.sessions() as session:
                return (await session.exec(select(Invite))).one()
        finally:
            await db.dispose()

    invite = asyncio.run(saved())
    assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in invite.token_hash
    assert invite.role is Role.DRIVER and invite.used_at is None
    assert abs(invite.expires_at - (system_clock() + timedelta(days=2))) < timedelta(minutes=2)


def test_an_owner_invite_says_an_owner(clean_env, tmp_path: Path):
    env = {**clean_env, "TELEGRAM_BOT_USERNAME": "lastmile_test_bot"}
    result = lastmile(["invite", "--role", "owner", "--expires", "12h"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Invite 1 for an owner, single use, valid until ")


def test_orders_import_reports_lines_and_exits_1(clean_env, tmp_path: Path):
    env = {**clean_env, "APP_TIMEZONE": "Europe/Berlin", "APP_PHONE_REGION": "DE"}
    file = FIXTURES / "orders_mixed.csv"
    result = lastmile(["orders", "import", str(file)], env, tmp_path)
    assert result.returncode == 1
    assert result.stdout.strip() == "4 created, 0 already present, 16 refused"
    errors = result.stderr.splitlines()
    assert f"{file}:4: lat 95.0 is outside -90…90" in errors
    assert f"{file}:9: has 4 cells but the header has 19 columns" in errors
    assert "ignored unknown column(s): colour" in errors
    again = lastmile(["orders", "import", str(file)], env, tmp_path)
    assert again.stdout.strip() == "0 created, 4 already present, 16 refused"

    async def refs() -> list[str]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'lastmile.db'}")
        try:
            async with db.sessions() as session:
                return sorted((await session.exec(select(Order.external_ref))).all())
        finally:
            await db.dispose()

    assert asyncio.run(refs()) == ["A-1", "A-13", "A-2", "A-9"]


def test_orders_import_of_a_missing_or_binary_file(clean_env, tmp_path: Path):
    missing = lastmile(["orders", "import", "nope.csv"], clean_env, tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not text")
    result = lastmile(["orders", "import", str(binary)], clean_env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"lastmile: {binary}: The file is not UTF-8 text; save it as 'CSV UTF-8' and send it again."
    )


async def test_run_with_telegram_polls_the_bot_api_and_answers(clean_env, tmp_path: Path):
    from tests.fakes import telegram_updates as tu
    from tests.fakes.telegram_api import FakeTelegram

    async with FakeTelegram() as fake:
        env = {**clean_env, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.url}
        fake.push_update(tu.command(tu.user(901, "Ron"), "/start"))

        def run() -> str:
            port = free_port()
            process = start(env, tmp_path, port)
            try:
                wait_healthy(process, port)
                deadline = time.monotonic() + 30
                while not fake.sent_to(901) and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                output = stop(process)
            assert process.returncode == 0, output
            return output

        output = await asyncio.to_thread(run)
    assert "Telegram: on (polling)" in output and "Traceback" not in output
    assert "delivery assistant" in (fake.sent_to(901)[0].text or "")


def test_jobs_lists_the_schedule_and_the_last_runs(clean_env, tmp_path: Path):
    env = {**clean_env, "APP_TIMEZONE": "Europe/Berlin"}
    empty = lastmile(["jobs"], env, tmp_path)
    assert empty.returncode == 0, empty.stderr
    lines = empty.stdout.splitlines()
    assert lines[0] == "Jobs (times in Europe/Berlin):"
    assert lines[1].split()[:4] == ["tracking.stale_locations", "every", "1", "min"]
    assert lines[-1] == "No job has run yet: jobs run while `lastmile run` is up."

    now = system_clock()
    berlin = ZoneInfo("Europe/Berlin")

    async def record() -> None:
        db = Database(sqlite_url(tmp_path / "data" / "lastmile.db"))
        try:
            async with db.transaction() as session:
                for minutes, outcome, error in (
                    (180, JobOutcome.RUNNING, None),  # its instance died: lost
                    (2, JobOutcome.FAILED, "RuntimeError: no route\nsecond line"),
                    (1, JobOutcome.OK, None),
                    (0, JobOutcome.RUNNING, None),
                ):
                    at = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
                    done = None if outcome is JobOutcome.RUNNING else at + timedelta(seconds=1)
                    session.add(
                        JobRun(job="tracking.stale_locations", scheduled_for=at, instance="vm:1",
                               started_at=at, finished_at=done, outcome=outcome, error=error)
                    )  # fmt: skip
        finally:
            await db.dispose()

    asyncio.run(record())
    result = lastmile(["jobs", "--runs", "3"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    runs = result.stdout.split("Last 3 run(s), newest first:\n")[1].splitlines()
    assert runs[0].split() == [
        "job", "scheduled", "for", "started", "finished", "outcome", "instance"
    ]  # fmt: skip
    newest, ok, failed, error = runs[1:5]
    local = (now.replace(second=0, microsecond=0)).astimezone(berlin)
    assert newest.split()[1:3] == [f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}"]
    assert newest.split()[-3:] == ["-", "running", "vm:1"]
    assert ok.split()[-2:] == ["ok", "vm:1"]
    assert failed.split()[-2:] == ["failed", "vm:1"]
    assert error.strip() == "error: RuntimeError: no route"
    assert runs[5:] == [" " * 11 + "second line"]
    assert "lost" not in result.stdout
    everything = lastmile(["jobs", "--runs", "10"], env, tmp_path)
    assert everything.stdout.splitlines()[-1].split()[-2:] == ["lost", "vm:1"]
    refused = lastmile(["jobs", "--runs", "0"], env, tmp_path)
    assert refused.returncode == 2 and "Invalid value for '--runs'" in refused.stderr
