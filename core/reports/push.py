"""Reports pushed to owners: the day's (daily at REPORTS_DAILY_AT, local) and, on Mondays, the
previous Monday–Sunday week's, and each owner's switch to stop and restart them.

A push builds the report once per language (core.reports.periods), keeps its chart and CSV
in the storage (core.storage) under reports/<period>/<language>/, and writes three outbox rows
for every owner who gets it: the text (with a "Stop daily reports" button), the chart as a
photo and the CSV as a document. Their idempotency keys name the owner, the period and the
part, so a push run again (a restart, a second instance) never sends one twice. Nothing here
knows a channel: each sender uploads the files the rows name.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col, select

from core.config import Settings
from core.db import Database
from core.errors import DomainError
from core.models import Member, MemberRole, OutboxMessage, Role
from core.notify import outbox
from core.notify.rules import Notice
from core.reports import periods
from core.reports import text as report_text
from core.storage import Files, storage_from_settings
from core.texts import staff_language

log = logging.getLogger(__name__)
REPORTS_DIR = "reports"
STOP = {"action": "reports.off", "order_id": 0}  # the button under a pushed report's text
PUSH_LOCK = 0x6C6D7270  # pushes take turns writing their rows (PostgreSQL)
WORDS = {"on": False, "off": True}  # what `/reports <word>` sets `reports_off` to


def report_day(now: datetime, at: time, zone: tzinfo) -> date:
    """The day whose report is due at `now`: today from `at` (local) on, else yesterday (a run
    late within its grace after midnight still reports the day it was meant for)."""
    local = now.astimezone(zone)
    return local.date() if local.time() >= at else local.date() - timedelta(days=1)


def report_week(now: datetime, at: time, zone: tzinfo) -> date:
    """The Monday of the week whose report is due at `now`: the week before the latest Monday
    at `at` (local)."""
    day = report_day(now, at, zone)
    return day - timedelta(days=day.weekday() + 7)


def period_key(period: periods.Period) -> str:
    first = period.start.date().isoformat()
    return first if period.kind == "day" else f"{period.kind}-{first}"


async def recipients(db: Database) -> list[Member]:
    """Active owners who have not switched their reports off."""
    async with db.reads() as session:
        statement = (
            select(Member)
            .join(MemberRole, col(MemberRole.member_id) == Member.id)
            .where(
                MemberRole.role == Role.OWNER,
                col(Member.active).is_(True),
                col(Member.reports_off).is_(False),
            )
            .order_by(col(Member.id))
        )
        return list(await session.exec(statement))


def _key(period: str, member_id: int | None, part: str) -> str:
    return f"report:{period}:{member_id}:{part}"


async def push(
    db: Database,
    settings: Settings,
    period: periods.Period,
    now: datetime | None = None,
    *,
    files: Files | None = None,
) -> int:
    """Queue the report of `period` for every subscribed owner; how many owners it was queued
    for now (a repeat queues nothing new). Its files go to `files` (by default the storage
    the settings name; a file the object store cannot take waits in the spool)."""
    key = period_key(period)
    owners = await recipients(db)
    async with db.reads() as session:  # a repeat: whoever has it already is left out
        statement = select(OutboxMessage.idempotency_key).where(
            col(OutboxMessage.idempotency_key).in_([_key(key, o.id, "text") for o in owners])
        )
        queued_before = set(await session.exec(statement))
    owners = [o for o in owners if _key(key, o.id, "text") not in queued_before]
    if not owners:
        return 0
    if files is None:
        files = Files(storage_from_settings(settings.storage, settings.app.data_dir), db)
    parts: dict[str, tuple[str, str, str, str]] = {}  # language -> text, label, chart, CSV
    for lang in sorted({staff_language(owner.language) for owner in owners}):
        built = await periods.build(db, settings, period, lang, now=now)
        folder = Path(REPORTS_DIR) / key / lang
        chart, sheet = folder / built.chart_name, folder / built.csv_name
        await files.put(chart.as_posix(), built.chart_png, "image/png")  # whole or not at all
        await files.put(sheet.as_posix(), built.csv, "text/csv")
        label = report_text.label(period, lang)
        parts[lang] = (built.text, label, chart.as_posix(), sheet.as_posix())
    queued = 0
    async with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":  # one push's rows in a row, by id
            await session.exec(select(sa.func.pg_advisory_xact_lock(PUSH_LOCK)))
        for owner in owners:
            assert owner.id is not None
            text, label, chart_path, sheet_path = parts[staff_language(owner.language)]
            notices = {
                "text": Notice(owner.id, "owner.report", {"text": text}, (STOP,)),
                "chart": Notice(owner.id, "owner.report_chart", {"period": label,
                                                                 "photo_path": chart_path}),
                "csv": Notice(owner.id, "owner.report_csv", {"period": label,
                                                             "document_path": sheet_path}),
            }  # fmt: skip
            written = [
                await outbox.add(session, notice, _key(key, owner.id, part), now=now)
                for part, notice in notices.items()
            ]
            queued += any(row is not None for row in written)
    log.info("report %s queued for %d owner(s)", key, queued)
    return queued


async def switch(db: Database, member_id: int, word: str) -> str:
    """`/reports [on|off]`: set (or, without a word, tell) whether this owner gets the pushed
    reports; the text key of the answer. Another word is refused and changes nothing."""
    given = word.strip()
    word = given.lower()
    if word and word not in WORDS:
        raise DomainError("reports.usage", text=given[:40])
    async with db.transaction() as session:
        member = await session.get(Member, member_id, with_for_update=True)
        if member is None or await session.get(MemberRole, (member_id, Role.OWNER)) is None:
            raise DomainError("reports.owners_only")
        if word:
            member.reports_off = WORDS[word]
            session.add(member)
        return "reports.now_off" if member.reports_off else "reports.now_on"
