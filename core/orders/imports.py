"""Import orders from a CSV file: good rows are saved, each bad row is reported by line.

Columns are documented in the README. `external_ref` is the key: a row whose reference is
already saved is left alone, so importing the same file twice creates nothing new.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from core.config import OrdersSettings
from core.db import Database, retrying
from core.errors import DomainError
from core.models import ProofKind, StopKind
from core.orders.lifecycle import Actor, Window
from core.orders.service import OrderDraft, Outcome, add_orders, normalize_phone
from core.validation import describe

REQUIRED = ("external_ref", "customer_name", "address")
OPTIONAL = (
    "customer_phone",
    "lat",
    "lon",
    "date",
    "time_window",
    "service_minutes",
    "weight_kg",
    "volume_l",
    "units",
    "priority",
    "proof",
    "pin",
    "skills",
    "notes",
    "zone",
    "pickup_address",
    "pickup_lat",
    "pickup_lon",
    "pickup_window",
)
PASSED_THROUGH = (
    "lat",
    "lon",
    "pickup_address",
    "pickup_lat",
    "pickup_lon",
    "service_minutes",
    "weight_kg",
    "volume_l",
    "units",
    "notes",
    "zone",
)
COLUMN_OF_FIELD = {
    "due_date": "date",
    "required_skills": "skills",
    "proof_required": "proof",
    "delivery_pin": "pin",
}
PRIORITIES = {"": 0, "0": 0, "normal": 0, "1": 1, "high": 1, "2": 2, "urgent": 2}
WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})$")
MAX_BYTES = 10 * 1024 * 1024


@dataclass
class ImportReport:
    created: list[tuple[int, int]] = field(default_factory=list)  # (line, order id)
    existing: list[tuple[int, int]] = field(default_factory=list)  # (line, order id)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    ignored_columns: list[str] = field(default_factory=list)


class RowProblem(Exception):
    pass


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise DomainError("error.csv_too_big", limit_mb=MAX_BYTES // (1024 * 1024))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("error.csv_not_utf8") from None


def _dialect(header_line: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def parse_windows(text: str, day: date | None, zone: ZoneInfo, stop: StopKind) -> list[Window]:
    """`09:00-12:00` or several (`09:00-12:00; 15:00-18:00`), local times on `day`."""
    parts = [part.strip() for part in re.split(r"[;,|]", text) if part.strip()]
    if parts and day is None:
        raise RowProblem("a time window needs a date (add the date column, like 2026-11-24)")
    windows = []
    for part in parts:
        match = WINDOW.match(part)
        if not match:
            raise RowProblem(f"time window {part!r} is not like 09:00-12:00")
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        try:
            start, end = time(h1, m1), time(h2, m2)
        except ValueError:
            raise RowProblem(f"time window {part!r} has a time that does not exist") from None
        if end <= start:
            raise RowProblem(f"time window {part!r} ends before it starts")
        assert day is not None
        windows.append(
            Window(
                datetime.combine(day, start, tzinfo=zone),
                datetime.combine(day, end, tzinfo=zone),
                stop,
            )
        )
    return windows


def row_to_draft(row: dict[str, str], zone: ZoneInfo, phone_region: str | None) -> OrderDraft:
    values = {key: (value or "").strip() for key, value in row.items()}
    phone = values.get("customer_phone") or None
    if phone:
        try:
            phone = normalize_phone(phone, phone_region)
        except DomainError as exc:
            raise RowProblem(f"customer_phone: {exc}") from None
    priority = values.get("priority", "").lower()
    if priority not in PRIORITIES:
        raise RowProblem(f"priority {priority!r} is not normal, high or urgent")
    proof = values.get("proof", "").lower() or ProofKind.PHOTO.value
    if proof not in {kind.value for kind in ProofKind}:
        raise RowProblem(f"proof {proof!r} is not photo, signature, pin or none")
    day: date | None = None
    if values.get("date"):
        try:
            day = date.fromisoformat(values["date"])
        except ValueError:
            raise RowProblem(f"date {values['date']!r} is not a date like 2026-11-24") from None
    windows = parse_windows(values.get("time_window", ""), day, zone, StopKind.DELIVERY)
    windows += parse_windows(values.get("pickup_window", ""), day, zone, StopKind.PICKUP)
    data = {key: values[key] for key in PASSED_THROUGH if values.get(key)}
    try:
        return OrderDraft.model_validate(
            {
                **data,
                "external_ref": values["external_ref"],
                "customer_name": values["customer_name"],
                "customer_phone": phone,
                "address": values["address"],
                "due_date": day,
                "windows": tuple(windows),
                "priority": PRIORITIES[priority],
                "proof_required": proof,
                "delivery_pin": values.get("pin") or None,
                "required_skills": tuple(re.split(r"[;,|]", values.get("skills", ""))),
            }
        )
    except ValidationError as exc:
        raise RowProblem("; ".join(describe(exc, COLUMN_OF_FIELD))) from None


async def import_orders(
    db: Database,
    text: str,
    actor: Actor,
    *,
    timezone: str,
    phone_region: str | None = None,
    rules: OrdersSettings | None = None,
) -> ImportReport:
    report = ImportReport()
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].strip():
        report.errors.append((1, "the file is empty; the first line must name the columns"))
        return report
    reader = csv.reader(io.StringIO(text), _dialect(lines[0]))
    header = [_column(name) for name in next(reader)]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        report.errors.append((1, f"missing column(s): {', '.join(missing)}"))
        return report
    report.ignored_columns = [n for n in header if n not in REQUIRED + OPTIONAL and n]
    zone = ZoneInfo(timezone)

    drafts: list[tuple[int, OrderDraft]] = []
    first_line: dict[str, int] = {}
    line = reader.line_num
    for cells in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            report.errors.append(
                (start, f"has {len(cells)} cells but the header has {len(header)} columns")
            )
            continue
        row = dict(zip(header, cells, strict=True))
        try:
            draft = row_to_draft(row, zone, phone_region)
        except RowProblem as exc:
            report.errors.append((start, str(exc)))
            continue
        ref = draft.external_ref or ""
        if not ref:
            report.errors.append((start, "external_ref is empty"))
            continue
        if ref in first_line:
            report.errors.append(
                (start, f"external_ref {ref!r} appears again (first on line {first_line[ref]})")
            )
            continue
        first_line[ref] = start
        drafts.append((start, draft))

    async def attempt() -> dict[int, Outcome]:
        async with db.transaction() as session:
            return await add_orders(session, drafts, actor, source="csv", rules=rules)

    for start, outcome in sorted((await retrying(attempt)).items()):
        if isinstance(outcome, str):
            report.errors.append((start, outcome))
        elif outcome[1]:
            report.created.append((start, outcome[0]))
        else:
            report.existing.append((start, outcome[0]))
    report.errors.sort()
    return report
