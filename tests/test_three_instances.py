"""Three real instances (`lastmile run`, three processes) on one database: the scheduler's jobs run
once per fire time across them, and when the instance that ran the latest run is killed with
SIGKILL another runs the next fire time; a position written through one instance reaches a
tracking page's live stream held open on another.

Short intervals come from the settings: DISPATCH_REOPTIMIZE_MINUTES=0.05 fires the autopilot's
`dispatch.reoptimize` job every 3 s, so a dozen fire times fit in under a minute."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select

from core.db import Database
from core.models import (
    Driver,
    JobOutcome,
    JobRun,
    LocationPing,
    Member,
    OrderStatus,
    Role,
    ShiftState,
)
from core.orders import service as orders
from core.orders.lifecycle import SYSTEM, Change
from core.people.members import grant
from tests.factories import new_order
from tests.fakes import telegram_updates as tu
from tests.fakes.telegram_api import FakeTelegram
from tests.instances import Instance, running
from tests.telegram_harness import SECRET

JOB = "dispatch.reoptimize"
EVERY_S = 3  # DISPATCH_REOPTIMIZE_MINUTES=0.05
TAKEOVER_S = 60.0  # the bound: another instance runs the jobs within a minute
WAIT_S = 90.0
RAN = re.compile(rf"scheduled job {re.escape(JOB)} \(([^)]+)\): ok in")


def scheduler_env(clean_env: dict[str, str]) -> dict[str, str]:
    return {
        **clean_env,
        "DISPATCH_MODE": "auto",
        "DISPATCH_REOPTIMIZE_MINUTES": str(EVERY_S / 60),
        "APP_LOG_LEVEL": "INFO",
    }


async def runs_of(db: Database, job: str = JOB) -> list[JobRun]:
    async with db.reads() as session:
        statement = select(JobRun).where(col(JobRun.job) == job)
        return sorted(await session.exec(statement), key=lambda run: run.scheduled_for)


async def until_runs(db: Database, enough: int, after: datetime | None = None) -> list[JobRun]:
    """Wait until `enough` runs of JOB fired after `after` have finished; all runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        runs = await runs_of(db)
        done = [
            run for run in runs
            if run.outcome is not JobOutcome.RUNNING
            and (after is None or aware(run.scheduled_for) > after)
        ]  # fmt: skip
        if len(done) >= enough:
            return runs
        assert loop.time() < deadline, f"{len(done)} runs of {JOB} after {WAIT_S} s"
        await asyncio.sleep(0.2)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pid_of(run: JobRun) -> int:
    return int(run.instance.rsplit(":", 1)[1])


def logged_fires(instances: list[Instance]) -> Counter[datetime]:
    """Fire times of JOB that some instance's log says it ran to the end, counted over all."""
    fires: Counter[datetime] = Counter()
    for each in instances:
        for stamp in RAN.findall(each.output()):
            fires[aware(datetime.fromisoformat(stamp))] += 1
    return fires


async def test_three_instances_run_each_fire_once_and_survive_the_killed_one(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    env = scheduler_env(clean_env)
    async with running(database_url, tmp_path, env, env, env) as instances:
        runs = await until_runs(db, 4)
        by_pid = {each.process.pid: each for each in instances}
        assert {pid_of(run) for run in runs} <= set(by_pid)
        victim = by_pid[pid_of(runs[-1])]  # the one that ran the latest fire time
        victim.kill()
        killed_at = datetime.now(UTC)
        killed_mono = time.monotonic()
        after = await until_runs(db, 4, after=killed_at)
        first_after = min(
            aware(run.scheduled_for) for run in after if aware(run.scheduled_for) > killed_at
        )
        taken_over_s = (first_after - killed_at).total_seconds()
        await asyncio.sleep(EVERY_S)  # a doubled run of the last fire time would show by now
        waited_s = time.monotonic() - killed_mono
        runs = await runs_of(db)
    survivors = {each.process.pid for each in instances if each is not victim}
    fires = [aware(run.scheduled_for) for run in runs]
    # one row per fire time, on EVERY_S boundaries, none skipped from the first to the last
    assert len(fires) == len(set(fires)), Counter(fires).most_common(3)
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires)}
    assert steps == {float(EVERY_S)}, f"fire times {fires}"
    # after the kill, only survivors ran, the first within the bound
    late = [run for run in runs if aware(run.scheduled_for) > killed_at]
    assert {pid_of(run) for run in late} <= survivors
    assert taken_over_s <= TAKEOVER_S, f"taken over after {taken_over_s:.1f} s"
    assert taken_over_s <= EVERY_S + 1  # no leader to elect: the next fire time is run
    assert waited_s < TAKEOVER_S
    # the effects: each finished run was run to its end by exactly one process, the one its row
    # names; a run cut by the kill stays `running` under the victim's name and is not re-run
    logged = logged_fires(instances)
    assert max(logged.values()) == 1, logged.most_common(3)
    for run in runs:
        if run.outcome is JobOutcome.RUNNING:
            assert pid_of(run) == victim.process.pid and run.finished_at is None
            assert aware(run.scheduled_for) not in logged
        else:
            assert run.outcome is JobOutcome.OK, run.error
            assert logged[aware(run.scheduled_for)] == 1
            owner = by_pid[pid_of(run)]
            assert f"({aware(run.scheduled_for).isoformat()}): ok in" in owner.output()
    assert len([run for run in runs if run.outcome is JobOutcome.RUNNING]) <= 1


# -- a position written through one instance, seen on a page held open on another ---------------


async def driver_out_for_delivery(db: Database, telegram_id: int) -> tuple[int, str]:
    """Driver Ana on shift with one order out for delivery; (driver id, its tracking token)."""
    async with db.transaction() as session:
        member = Member(
            name="Ana Lopez", telegram_user_id=telegram_id, telegram_chat_id=telegram_id
        )
        session.add(member)
        await session.flush()
        await grant(session, member, Role.DRIVER)
        driver = (await session.exec(select(Driver).where(Driver.member_id == member.id))).one()
        driver.shift_state = ShiftState.ON
        driver.shift_started_at = datetime.now(UTC)
        session.add(driver)
    assert driver.id is not None
    order = await new_order(db)
    await orders.change_status(
        db, order.id, OrderStatus.ASSIGNED, SYSTEM, Change(driver_id=driver.id)
    )
    await orders.change_status(db, order.id, OrderStatus.OUT_FOR_DELIVERY, SYSTEM)
    return driver.id, order.tracking_token


async def next_data(lines: AsyncIterator[str]) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended")


async def test_a_position_sent_to_one_instance_reaches_a_page_open_on_another(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    telegram_id = 4242
    driver_id, token = await driver_out_for_delivery(db, telegram_id)
    ana = tu.user(telegram_id, "Ana", last_name=None)
    start = int(time.time()) - 30
    async with FakeTelegram() as fake:
        env = {
            **clean_env,
            "DISPATCH_MODE": "manual",
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_URL": fake.url,
            "TELEGRAM_MODE": "webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
        }
        async with (
            running(database_url, tmp_path, env, env) as (writer, reader),
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", f"{reader.base_url}/t/{token}/events") as page,
        ):
            assert page.status_code == 200
            lines = page.aiter_lines()
            first = await next_data(lines)
            assert first["driver_at"] is None  # no position yet
            hook = f"{writer.base_url}/webhooks/telegram"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            for step in range(4):
                lat, lon = round(52.50 + step * 0.001, 6), round(13.40 + step * 0.001, 6)
                update = tu.location(
                    ana, lat, lon, live_period=3600, edit=step > 0, message_id=77,
                    date=start, edit_date=start + step if step else None, update_id=900 + step,
                )  # fmt: skip
                answer = await http.post(hook, json=update, headers=headers)
                assert answer.status_code == 200, answer.text
                seen = await asyncio.wait_for(next_data(lines), 20)
                while seen["driver_at"] != [lat, lon]:  # an event of the order may come first
                    seen = await asyncio.wait_for(next_data(lines), 20)
    async with db.reads() as session:
        stored = list(
            await session.exec(select(LocationPing).where(col(LocationPing.driver_id) == driver_id))
        )
    assert len(stored) == 4
