"""What a transaction writing order events needs besides its data: the quiet hours that hold
notices back, how long merchant webhooks are retried, and the base URL of tracking links.

Built once from the settings (`Services.build`) and carried by the `Database` to every session
it opens (`Database.carry`), so the lifecycle finds it without a module-wide setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.db import Database
from core.notify.quiet_hours import QuietHours

SESSION_KEY = "lastmile_policy"


@dataclass(frozen=True)
class Policy:
    quiet: QuietHours | None = None
    webhook_retry_for: timedelta = timedelta(hours=24)
    base_url: str = "http://127.0.0.1:8000"

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            quiet=QuietHours.parse(settings.notify.quiet_hours, settings.app.timezone),
            webhook_retry_for=timedelta(hours=settings.webhooks.retry_hours),
            base_url=str(settings.app.base_url),
        )

    def carried_by(self, db: Database) -> None:
        """Hand this policy to every session `db` opens from now on."""
        db.carry(SESSION_KEY, self)


DEFAULT = Policy()


def policy_of(session: AsyncSession) -> Policy:
    """The policy of the database `session` belongs to (the defaults when none was given)."""
    policy = session.info.get(SESSION_KEY, DEFAULT)
    assert isinstance(policy, Policy)
    return policy
