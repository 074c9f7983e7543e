"""Role checks for routers and handlers."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter

from core.models import Role
from core.services.members import Identity


class HasRole(Filter):
    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, event: Any, who: Identity | None = None) -> bool:
        return who is not None and who.has(*self.roles)


STAFF = HasRole(Role.DISPATCHER, Role.OWNER)
DRIVER = HasRole(Role.DRIVER)
CUSTOMER = HasRole(Role.CUSTOMER)
