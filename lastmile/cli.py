"""The `lastmile` command: run the service, migrate, invite people, import orders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from core.config import Settings, SettingsProblem, load_settings
from core.db import Database
from core.errors import DomainError
from core.merchants import apikeys, deliveries
from core.migrations import pending, upgrade
from core.models import Role
from core.orders import imports
from core.orders.lifecycle import Actor
from core.people import invites
from core.texts import t

T = TypeVar("T")
CLI = Actor("cli")
EXIT_USAGE = 2


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"lastmile: {message}", err=True)
    sys.exit(code)


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsProblem as exc:
        fail(f"configuration error: {exc}", EXIT_USAGE)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except DomainError as exc:
        fail(str(exc))


async def with_db(config: Settings, work: Any) -> Any:
    """Bring the database up to date, run `work(db)`, close the database."""
    await upgrade(config.database_url)
    db = Database(config.database_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", force=True
    )
    if level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


@click.group()
def main() -> None:
    """Lastmile: chat-first last-mile delivery."""


@main.command()
@click.option("--host", help="Address to listen on (default APP_HOST).")
@click.option("--port", type=int, help="Port to listen on (default APP_PORT).")
def run(host: str | None, port: int | None) -> None:
    """Apply pending migrations and start the service."""
    import uvicorn

    from web.app import create_app

    config = settings()
    setup_logging(config.app.log_level)
    log = logging.getLogger("lastmile")
    todo = run_async(pending(config.database_url))
    if todo:
        log.info("applying %d migration(s): %s", len(todo), ", ".join(todo))
        run_async(upgrade(config.database_url))
    host, port = host or config.app.host, port or config.app.port
    log.info("serving on http://%s:%d (database: %s)", host, port, config.database_url)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=host,
            port=port,
            log_level=config.app.log_level.lower(),
            log_config=None,
            timeout_graceful_shutdown=5,  # open tracking pages (SSE) never end by themselves
        )
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal: make that
    # re-raise a clean exit (both become KeyboardInterrupt) instead of a traceback or a kill.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())
    log.info("stopped")


@main.command()
@click.option("--orders", "n_orders", type=click.IntRange(1, 1000), default=80, show_default=True)
@click.option("--drivers", "n_drivers", type=click.IntRange(1, 30), default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed, the same day.")
@click.option("--city", type=click.Choice(["barcelona"]), default="barcelona", show_default=True)
@click.option(
    "--speed", type=click.FloatRange(1, 100_000), default=180.0, show_default=True,
    help="Simulated seconds per real second (180: one delivery hour in 20 s).",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("data/demo"),
    show_default=True, help="Folder the day's report (text, chart, CSV) is copied to.",
)  # fmt: skip
@click.option("--keep-db", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def demo(
    n_orders: int, n_drivers: int, seed: int, city: str, speed: float, out: Path,
    keep_db: Path | None,
) -> None:  # fmt: skip
    """Play a whole delivery day on the real service, in the sandbox, on a fast clock."""
    from lastmile.demo.run import Interrupted, Options, play

    setup_logging("WARNING")
    options = Options(n_orders, n_drivers, seed, city, speed, out, keep_db)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = asyncio.run(play(options))
    except (KeyboardInterrupt, Interrupted):
        click.echo("\nlastmile demo: stopped", err=True)
        sys.exit(130)
    sys.exit(0 if result.nothing_lost else 1)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    config = settings()
    todo = run_async(pending(config.database_url))
    run_async(upgrade(config.database_url, revision))
    click.echo(f"applied {len(todo)} migration(s)" if todo else "database is up to date")


@main.command()
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in invites.INVITABLE]),
    help="What the invited person becomes.",
)
@click.option("--expires", default="7d", show_default=True, help="Validity: 30m, 12h, 7d, 2w.")
@click.option(
    "--qr",
    "qr_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the QR code PNG (default: APP_DATA_DIR/invites/).",
)
def invite(role: str, expires: str, qr_path: Path | None) -> None:
    """Create a single-use invite link and its QR code (a Telegram link, a WhatsApp link, or
    both: the same invite, used once on either)."""
    config = settings()
    username, number = config.telegram.bot_username, config.whatsapp.phone_number
    if not username and not number:
        fail(
            "TELEGRAM_BOT_USERNAME is not set: invite links open your bot, so put its "
            "username (without @) in .env",
            EXIT_USAGE,
        )
    try:
        valid_for = invites.parse_duration(expires)
    except DomainError as exc:
        fail(f"--expires: {exc}", EXIT_USAGE)

    async def work(database: Database) -> tuple[Any, str]:
        return await invites.create_invite(database, Role(role), valid_for)

    record, token = run_async(with_db(config, work))
    path = qr_path or config.app.data_dir / "invites" / f"invite-{record.id}-{role}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    until = f"{record.expires_at:%Y-%m-%d %H:%M} UTC"
    click.echo(t("cli.invite_created", id=record.id, role=t(f"role.a.{role}"), until=until))
    links = [invites.deep_link(username, token)] if username else []
    if number:
        links.append(invites.whatsapp_link(number, token))
    for index, link in enumerate(links):
        qr = path if index == 0 else path.with_name(f"{path.stem}-whatsapp{path.suffix}")
        qr.write_bytes(invites.qr_png(link))
        click.echo(link)
        click.echo(f"QR code: {qr}")


@main.group()
def apikey() -> None:
    """API keys for the REST API (/api/v1)."""


@apikey.command("create")
@click.argument("name")
def apikey_create(name: str) -> None:
    """Create an API key called NAME; its secret is printed once."""
    config = settings()

    async def work(database: Database) -> tuple[Any, str]:
        return await apikeys.create_key(database, name)

    key, secret = run_async(with_db(config, work))
    click.echo(f"API key {key.prefix} ({key.name}) created. Keep the secret, it is shown once:")
    click.echo(secret)
    click.echo("Send it as 'Authorization: Bearer <key>' (or 'X-API-Key: <key>').")


@apikey.command("revoke")
@click.argument("prefix")
def apikey_revoke(prefix: str) -> None:
    """Revoke the API key whose prefix is PREFIX; it stops working at once."""
    config = settings()

    async def work(database: Database) -> Any:
        return await apikeys.revoke(database, prefix)

    key = run_async(with_db(config, work))
    click.echo(f"API key {key.prefix} ({key.name}) revoked")


@apikey.command("webhook")
@click.argument("prefix")
@click.argument("url", required=False)
@click.option("--all-orders", is_flag=True, help="Every order's changes, not only this key's.")
@click.option("--off", is_flag=True, help="Switch the webhook off.")
def apikey_webhook(prefix: str, url: str | None, all_orders: bool, off: bool) -> None:
    """Send status changes of key PREFIX's orders to URL, signed; prints the signing secret."""
    if bool(url) == off:
        fail("give a URL, or --off to switch the webhook off", EXIT_USAGE)
    config = settings()

    async def work(database: Database) -> Any:
        key = await apikeys.by_prefix(database, prefix)
        assert key.id is not None
        return await deliveries.set_url(
            database,
            key.id,
            None if off else url,
            all_orders=all_orders,
            rules=config.webhooks,
        )

    key = run_async(with_db(config, work))
    if off:
        click.echo(f"Webhook of API key {key.prefix} ({key.name}) switched off")
        return
    scope = "every order" if key.webhook_all_orders else "orders made with this key"
    click.echo(f"Status changes of {scope} go to {key.webhook_url}")
    click.echo(f"Signing secret: {key.webhook_secret}")
    click.echo("Each request carries 'Lastmile-Signature: sha256=<HMAC-SHA256 of the body>'.")


@main.command()
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the last runs to show.",
)
def jobs(runs: int) -> None:
    """The scheduled jobs, their next fire time and their last runs."""
    from core.bootstrap import Services
    from core.jobs import service_jobs
    from core.scheduler import local, next_fire, recent_runs, state_of

    config = settings()
    zone = config.app.timezone

    def when(moment: datetime | None) -> str:
        return "-" if moment is None else f"{local(moment, zone):%Y-%m-%d %H:%M:%S}"

    async def work(database: Database) -> None:
        services = Services.build(config, database)
        try:
            now = services.clock()
            click.echo(f"Jobs (times in {zone}):")
            for job in service_jobs(services):
                click.echo(f"  {job.name:<26} {job.when:<32} next {when(next_fire(job, now))}")
            latest = await recent_runs(database, runs)
        finally:
            await services.close()
        if not latest:
            click.echo("No job has run yet: jobs run while `lastmile run` is up.")
            return
        click.echo(f"Last {len(latest)} run(s), newest first:")
        click.echo(
            f"  {'job':<26} {'scheduled for':<19}  {'started':<19}  {'finished':<19}  "
            f"{'outcome':<7}  instance"
        )
        for run in latest:
            click.echo(
                f"  {run.job:<26} {when(run.scheduled_for)}  {when(run.started_at)}  "
                f"{when(run.finished_at):<19}  {state_of(run, now):<7}  {run.instance}"
            )
            if run.error:
                click.echo("    error: " + run.error.replace("\n", "\n" + " " * 11))

    run_async(with_db(config, work))


@main.group()
def orders() -> None:
    """Orders."""


@orders.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def orders_import(file: Path) -> None:
    """Import orders from a CSV FILE (columns: see README). Exit 1 if any row was refused."""
    config = settings()
    try:
        text = imports.decode(file.read_bytes())
    except DomainError as exc:
        fail(f"{file}: {exc}")

    async def work(database: Database) -> imports.ImportReport:
        return await imports.import_orders(
            database,
            text,
            CLI,
            timezone=config.app.timezone,
            phone_region=config.app.phone_region,
            rules=config.orders,
        )

    report = run_async(with_db(config, work))
    for line, reason in report.errors:
        click.echo(f"{file}:{line}: {reason}", err=True)
    if report.ignored_columns:
        click.echo(f"ignored unknown column(s): {', '.join(report.ignored_columns)}", err=True)
    click.echo(
        f"{len(report.created)} created, {len(report.existing)} already present, "
        f"{len(report.errors)} refused"
    )
    if report.errors:
        sys.exit(1)


@main.command()
@click.option("--date", "day", metavar="D", help="A day: YYYY-MM-DD, today or yesterday.")
@click.option("--week", metavar="W", help="An ISO week, e.g. 2026-W49 (Monday to Sunday).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the chart (PNG) and the orders (CSV); made when missing.",
)
def report(day: str | None, week: str | None, out: Path) -> None:
    """Print a day's (default today) or a week's report; write its chart and CSV into --out."""
    from zoneinfo import ZoneInfo

    from core.clock import Clock, system_clock
    from core.reports import periods

    config = settings()
    clock: Clock = system_clock  # the command's composition root: the wall clock
    now = clock()
    try:
        if day is not None and week is not None:
            raise DomainError("report.date_or_week")
        zone = ZoneInfo(config.app.timezone)
        if week is not None:
            period = periods.named_week(week, zone)
        elif day is not None:
            period = periods.named_day(day, now, zone)
        else:
            period = periods.named("today", now, zone)
    except DomainError as exc:
        fail(str(exc), EXIT_USAGE)

    async def work(database: Database) -> periods.ReportFiles:
        return await periods.build(database, config, period, "en", now=now)

    files = run_async(with_db(config, work))
    out.mkdir(parents=True, exist_ok=True)
    (out / files.chart_name).write_bytes(files.chart_png)
    (out / files.csv_name).write_bytes(files.csv)
    click.echo(files.text)
    click.echo(f"wrote {out / files.chart_name} and {out / files.csv_name}", err=True)
