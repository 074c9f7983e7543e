"""`/api/v1/drivers`: who is driving, and how loaded they are."""

from __future__ import annotations

from fastapi import APIRouter

from core.dispatch import board
from core.drivers.stops import first_name
from web.deps import DB
from web.routes.api.common import Key
from web.routes.api.models import DriverOut

router = APIRouter(tags=["drivers"])


@router.get(
    "/drivers",
    summary="List drivers",
    description="Active drivers, on shift first: first name, when last seen, open orders.",
)
async def list_drivers(db: DB, key: Key) -> list[DriverOut]:
    return [
        DriverOut(
            id=line.driver_id,
            first_name=first_name(line.name),
            on_shift=line.on_shift,
            last_seen_at=line.last_seen,
            load=line.load,
        )
        for line in await board.drivers(db)
    ]
