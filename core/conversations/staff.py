"""Dispatchers and owners: planning with a progress line, CSV imports, invites and reports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from core.conversations.events import Event, Location, Upload
from core.conversations.replies import OutFile
from core.conversations.turn import Turn
from core.dispatch import board
from core.dispatch.plan_figures import plan_figures
from core.dispatch.planner import DispatchReport
from core.errors import DomainError
from core.models import Role
from core.notify.messages import tracking_link
from core.orders import imports
from core.people import invites
from core.reports import periods
from core.texts import t

PROGRESS_EVERY_S = 1.0
REPORT_ROWS = 20
IMPORT = "import.file"
INVITE_DAYS = 7
T = TypeVar("T")


def tracking(turn: Turn, token: str) -> str:
    return tracking_link(turn.svc.settings, token)


async def run(turn: Turn, event: Event) -> bool:
    """/import, /invite, /report, and the file an /import waits for."""
    from core.conversations.events import Command

    if isinstance(event, Command):
        if event.name == "import":
            await turn.goto(IMPORT)
            turn.say(t("import.prompt", turn.lang))
        elif event.name == "invite":
            await _invite(turn, event.args.strip().lower())
        elif event.name == "report":
            await _report(turn, event.args)
        else:
            return False
        return True
    if not turn.at(IMPORT) or (isinstance(event, Location) and (event.update or event.ended)):
        return False
    if isinstance(event, Upload) and event.kind == "document":
        await _import(turn, event)
    else:
        turn.say(t("import.not_csv", turn.lang))
    return True


async def _import(turn: Turn, upload: Upload) -> None:
    lang, svc = turn.lang, turn.svc
    name = upload.name.lower()
    if not name.endswith((".csv", ".txt")) and upload.mime_type not in ("text/csv", "text/plain"):
        turn.say(t("import.not_csv", lang))
        return
    if (upload.size or 0) > imports.MAX_BYTES:
        raise DomainError("error.csv_too_big", limit_mb=imports.MAX_BYTES // (1024 * 1024))
    text = imports.decode(await upload.fetch())
    await turn.finish()
    report = await imports.import_orders(
        svc.db,
        text,
        turn.actor,
        timezone=svc.settings.app.timezone,
        phone_region=svc.settings.app.phone_region,
        rules=svc.settings.orders,
    )
    summary = t("import.created", lang, count=len(report.created))
    if report.existing:
        summary += t("import.existing", lang, count=len(report.existing))
    lines = [summary]
    if report.errors:
        lines.append(t("import.errors", lang, count=len(report.errors)))
    lines += [
        t("import.row", lang, row=row, problem=problem)
        for row, problem in report.errors[:REPORT_ROWS]
    ]
    turn.say("\n".join(lines))


async def _invite(turn: Turn, word: str) -> None:
    lang, who = turn.lang, turn.who
    allowed = {"driver": Role.DRIVER, "dispatcher": Role.DISPATCHER}
    if who.has(Role.OWNER):
        allowed["owner"] = Role.OWNER
    if word not in allowed:
        turn.say(t("invite.usage_owner" if who.has(Role.OWNER) else "invite.usage", lang))
        return
    channel = turn.svc.conversations.channel(turn.chat)
    if await channel.start_link("probe") is None:  # no links here: no invite is made
        turn.say(t("invite.no_username", lang))
        return
    valid_for = invites.parse_duration(f"{INVITE_DAYS}d")
    _, token = await invites.create_invite(turn.svc.db, allowed[word], valid_for, who.member_id)
    link = await channel.start_link(token)
    assert link is not None
    valid = t("time.days", lang, count=INVITE_DAYS)
    caption = t("invite.created", lang, role=t(f"role.{word}", lang), valid=valid, link=link)
    turn.say(caption, file=OutFile("qr", "invite.png", content=invites.qr_png(link)))


async def _report(turn: Turn, args: str) -> None:
    svc = turn.svc
    now = svc.clock()
    period = periods.named(args or "today", now, turn.zone)
    files = await periods.build(svc.db, svc.settings, period, turn.lang, now=now)
    turn.say(files.text)
    turn.say("", file=OutFile("photo", files.chart_name, content=files.chart_png))
    turn.say("", file=OutFile("document", files.csv_name, content=files.csv))


# --- planning, with a progress line ---


async def with_progress(turn: Turn, work: Awaitable[T]) -> T:
    """Run `work`; where the channel shows replies as they come, a progress line counts the
    seconds (edited in place) until the result replaces it."""
    turn.say(t("optimize.working", turn.lang))
    await turn.flush()
    task = asyncio.ensure_future(work)
    seconds = 0
    while not task.done():
        done, _ = await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
        if done:
            break
        seconds += 1
        if turn.send is not None:
            turn.say(t("optimize.progress", turn.lang, seconds=seconds), edit=True)
            await turn.flush()
    return task.result()


async def dispatch(turn: Turn, args: str) -> None:
    lang, svc = turn.lang, turn.svc
    report = await with_progress(turn, svc.planner.dispatch_day(turn.actor))
    if not report.assigned and not report.unassigned and not report.skipped:
        turn.say(t("dispatch.nothing", lang), edit=True)
        return
    lines = [
        t("dispatch.summary", lang, assigned=len(report.assigned), left=len(report.unassigned))
    ]
    assigned, left = report.assigned[:REPORT_ROWS], list(report.unassigned.items())[:REPORT_ROWS]
    refs = await board.refs(svc.db, {a.order_id for a in assigned} | {o for o, _ in left})
    lines += [t("dispatch.line", lang, ref=refs[a.order_id], driver=a.driver) for a in assigned]
    lines += [t("dispatch.left", lang, ref=refs[o], reason=why) for o, why in left]
    lines += [*_skipped(report, lang), await _figures(turn)]
    turn.say("\n".join(lines), edit=True)


async def optimize(turn: Turn, args: str) -> None:
    lang = turn.lang
    report = await with_progress(turn, turn.svc.planner.optimize(turn.actor))
    minutes, km = report.seconds_saved // 60, round(report.metres_saved / 1000, 1)
    if minutes <= 0 and km <= 0:
        text = t("optimize.no_gain", lang)
    else:
        text = t("optimize.result", lang, minutes=minutes, km=km)
    turn.say("\n".join([text, *_skipped(report, lang), await _figures(turn)]), edit=True)


async def _figures(turn: Turn) -> str:
    """One line: what the plan in force costs from now on."""
    plan = await plan_figures(turn.svc.planner)
    total = plan.total
    return t(
        "plan.figures",
        turn.lang,
        drivers=total.vans,
        stops=total.stops,
        paid=f"{total.paid_hours:.1f}",
        drive=f"{total.drive_hours:.1f}",
        km=f"{total.km:.1f}",
        cost=f"{total.cost:.2f}",
        per_hour=f"{plan.cost_per_hour:g}",
        per_km=f"{plan.cost_per_km:g}",
    )


def _skipped(report: DispatchReport, lang: str) -> list[str]:
    """Orders that changed while the plan was made (a manual choice, a start): left as is."""
    return [
        t("dispatch.left", lang, ref=f"#{o}", reason=why)
        for o, why in list(report.skipped.items())[:REPORT_ROWS]
    ]
