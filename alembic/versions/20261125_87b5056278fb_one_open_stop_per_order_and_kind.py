"""one open stop per order and kind

Revision ID: 87b5056278fb
Revises: f2304ce5ebb7
Create Date: 2026-11-24 15:00:00

A stop is open until its visit ends (actual_departure set). Before the partial unique index,
existing rows are repaired: visits that ended are closed, unvisited stops of orders no longer
on that driver's route are dropped, and of several open stops of one order and kind the one
being visited (else the one on its driver's route, else the newest) is kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "87b5056278fb"
down_revision: str | None = "f2304ce5ebb7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_STOP = "actual_departure IS NULL"
ON_A_ROUTE = ("assigned", "picked_up", "out_for_delivery", "arrived")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT s.id, s.order_id, s.kind, s.actual_arrival IS NOT NULL, "
            "r.driver_id = o.driver_id, o.status "
            "FROM route_stops s JOIN routes r ON r.id = s.route_id "
            "JOIN orders o ON o.id = s.order_id WHERE s.actual_departure IS NULL"
        )
    ).all()
    close, drop = [], []
    kept: dict[tuple[int, str], list[tuple[bool, bool, int]]] = {}
    for stop_id, order_id, kind, visited, on_its_route, status in rows:
        being_visited = status == "arrived" and kind == "delivery"
        if visited and not being_visited:
            close.append(stop_id)  # the visit ended (failed, undone, …) without a departure
        elif not visited and (status not in ON_A_ROUTE or not on_its_route):
            drop.append(stop_id)  # never visited, and no longer on this driver's route
        else:
            rank = (bool(visited), bool(on_its_route), stop_id)
            kept.setdefault((order_id, kind), []).append(rank)
    for candidates in kept.values():
        for visited, _, stop_id in sorted(candidates, reverse=True)[1:]:
            (close if visited else drop).append(stop_id)
    for statement, ids in (
        ("UPDATE route_stops SET actual_departure = actual_arrival WHERE id IN :ids", close),
        ("DELETE FROM route_stops WHERE id IN :ids", drop),
    ):
        if ids:
            expanding = sa.bindparam("ids", expanding=True)
            bind.execute(sa.text(statement).bindparams(expanding), {"ids": ids})
    op.create_index(
        "uq_route_stops_open",
        "route_stops",
        ["order_id", "kind"],
        unique=True,
        sqlite_where=sa.text(OPEN_STOP),
        postgresql_where=sa.text(OPEN_STOP),
    )


def downgrade() -> None:
    op.drop_index("uq_route_stops_open", table_name="route_stops")
