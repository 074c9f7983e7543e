"""CSV import: good rows saved, each bad row reported with its line and reason, re-imports safe."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from core.config import OrdersSettings
from core.db import Database
from core.errors import DomainError
from core.models import Customer, Order, OrderEvent, OrderKind, OrderWindow, StopKind
from core.orders.imports import decode, import_orders
from core.orders.lifecycle import Actor
from tests.conftest import FIXTURES
from tests.factories import count

CLI = Actor("cli")
MIXED = FIXTURES / "orders_mixed.csv"

EXPECTED_ERRORS = {
    4: "lat 95.0 is outside -90…90",
    5: "give both lat and lon, or neither",
    6: "time window '12:00-09:00' ends before it starts",
    7: "time window '9am-noon' is not like 09:00-12:00",
    8: "external_ref 'A-1' appears again (first on line 2)",
    9: "has 4 cells but the header has 19 columns",
    10: "customer_phone: '12345' is not a valid phone number",
    12: "a time window needs a date",
    13: "lon is not a number",
    14: "weight_kg must be at least 0",
    17: "priority 'asap' is not normal, high or urgent",
    18: "external_ref is empty",
    19: "0,0 is in the ocean",
    20: "proof 'stamp' is not photo, signature, pin or none",
    21: "time window '25:00-26:00' has a time that does not exist",
    22: "date '2026-02-30' is not a date like 2026-11-24",
}


async def run(db: Database, text: str, rules: OrdersSettings | None = None):
    return await import_orders(
        db, text, CLI, timezone="Europe/Berlin", phone_region="DE", rules=rules
    )


async def test_mixed_file_saves_good_rows_and_reports_bad_ones(db: Database):
    report = await run(db, decode(MIXED.read_bytes()), OrdersSettings(default_service_minutes=7))
    assert dict(report.errors).keys() == EXPECTED_ERRORS.keys()
    for line, reason in report.errors:
        assert EXPECTED_ERRORS[line] in reason, (line, reason)
    assert [line for line, _ in report.created] == [2, 3, 11, 16]
    assert report.ignored_columns == ["colour"]

    async with db.sessions() as session:
        saved = {o.external_ref: o for o in (await session.exec(select(Order))).all()}
        assert sorted(saved) == ["A-1", "A-13", "A-2", "A-9"]
        a1, a2, a9, a13 = saved["A-1"], saved["A-2"], saved["A-9"], saved["A-13"]
        assert a1.customer_id == a9.customer_id  # same phone, same customer
        customer = await session.get(Customer, a1.customer_id)
        assert (customer.name, customer.phone) == ("Ana Lima", "+4915112345678")
        assert (a1.lat, a1.lon, a1.service_minutes, a1.weight_kg) == (52.52, 13.405, 4, 2.5)
        assert a1.notes == "Ring twice" and a1.due_date == date(2026, 11, 24)
        assert (a2.lat, a2.lon, a2.priority) == (None, None, 1)
        assert a2.required_skills == ["fridge", "heavy"]
        assert a9.proof_required.value == "none" and a9.service_minutes == 7  # the default
        assert a13.kind is OrderKind.PICKUP_DELIVERY and a13.priority == 2
        assert a13.delivery_pin is not None and len(a13.delivery_pin) == 4
        assert len(a13.tracking_token) >= 22 and a13.tracking_token != a1.tracking_token
        windows = (await session.exec(select(OrderWindow).order_by(OrderWindow.id))).all()
        a2_windows = [(w.starts_at, w.ends_at) for w in windows if w.order_id == a2.id]
        assert a2_windows == [  # Berlin is UTC+1 in November
            (datetime(2026, 11, 24, 8, tzinfo=UTC), datetime(2026, 11, 24, 11, tzinfo=UTC)),
            (datetime(2026, 11, 24, 14, tzinfo=UTC), datetime(2026, 11, 24, 17, tzinfo=UTC)),
        ]
        pickup = [w for w in windows if w.order_id == a13.id and w.stop is StopKind.PICKUP]
        assert [(w.starts_at.hour, w.ends_at.hour) for w in pickup] == [(11, 12)]
    assert await count(db, OrderEvent) == 4


async def test_reimport_creates_no_duplicates(db: Database):
    text = decode(MIXED.read_bytes())
    first = await run(db, text)
    second = await run(db, text)
    assert second.created == []
    assert second.existing == first.created
    assert second.errors == first.errors
    assert await count(db, Order) == 4
    assert await count(db, Customer) == 3
    assert await count(db, OrderEvent) == 4


async def test_missing_required_column_saves_nothing(db: Database):
    report = await run(db, "external_ref,customer_name,lat,lon\nB-1,Ann,52.5,13.4\n")
    assert report.errors == [(1, "missing column(s): address")]
    assert report.created == [] and await count(db, Order) == 0


@pytest.mark.parametrize("text", ["", "\n\n"])
async def test_empty_file(db: Database, text: str):
    report = await run(db, text)
    assert report.errors == [(1, "the file is empty; the first line must name the columns")]


async def test_semicolon_separated_excel_export_with_bom(db: Database):
    data = "\ufeffExternal Ref;Customer Name;Address;Lat;Lon\nC-1;Zoë;Straße 1;52,5;13.4\n"
    data += "C-2;Zed;Straße 2;52.5;13.4\n"
    report = await run(db, decode(data.encode("utf-8")))
    assert report.created == [(3, 1)]
    assert report.errors == [(2, "lat is not a number")]  # decimal comma is refused, not guessed


def test_non_utf8_and_oversized_files_are_refused():
    with pytest.raises(DomainError, match="not UTF-8"):
        decode("Zoë".encode("latin-1"))
    with pytest.raises(DomainError, match="larger than 10 MB"):
        decode(b"x" * (10 * 1024 * 1024 + 1))
