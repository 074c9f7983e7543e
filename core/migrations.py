"""Apply Alembic migrations from code (`lastmile run`, `lastmile db upgrade`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from alembic import command
from core.db import create_engine

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url`, in one transaction where the database allows it."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def pending(url: str) -> list[str]:
    """Revisions not yet applied to the database at `url`, oldest first."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    finally:
        await engine.dispose()
    script = ScriptDirectory.from_config(alembic_config())
    revisions = script.iterate_revisions("heads", current[0] if current else "base")
    return [rev.revision for rev in reversed(list(revisions))]
