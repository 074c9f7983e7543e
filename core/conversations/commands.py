"""Which commands each role has (menus, help, and polite refusals use the same table)."""

from __future__ import annotations

from core.models import Role

STAFF_COMMANDS = (
    "neworder",
    "orders",
    "order",
    "drivers",
    "assign",
    "board",
    "dispatch",
    "optimize",
    "import",
    "invite",
    "report",
    "help",
)
COMMANDS: dict[Role | None, tuple[str, ...]] = {
    None: ("start", "help"),
    Role.CUSTOMER: ("help",),
    Role.DRIVER: ("shift", "route", "stops", "hours", "help"),
    Role.DISPATCHER: STAFF_COMMANDS,
    Role.OWNER: (*STAFF_COMMANDS[:-1], "reports", "help"),
}


def menu(roles: frozenset[Role]) -> list[str]:
    """The commands of these roles, then /help (strangers: /start and /help)."""
    names: list[str] = []
    for role in sorted(roles):
        names += [n for n in COMMANDS[role] if n not in names and n != "help"]
    return [*names, "help"] if roles else list(COMMANDS[None])


def roles_for(command: str) -> list[str]:
    return [role.value for role, names in COMMANDS.items() if role is not None and command in names]
