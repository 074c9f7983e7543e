"""`lastmile demo` plays a short day to the end, in a real subprocess, and what it prints is what
its database holds (read here with plain SQL from a copy the command leaves behind)."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 90


def at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def held(path: Path) -> dict[str, int]:
    """The figures the summary prints, counted from the database file."""
    with sqlite3.connect(path) as con:
        delivered = con.execute(
            "SELECT order_id, created_at FROM order_events "
            "WHERE kind = 'status_changed' AND to_status = 'delivered'"
        ).fetchall()
        windows: dict[int, list[tuple[datetime, datetime]]] = {}
        for order_id, starts, ends in con.execute(
            "SELECT order_id, starts_at, ends_at FROM order_windows WHERE stop = 'delivery'"
        ):
            windows.setdefault(order_id, []).append((at(starts), at(ends)))
        on_time = sum(
            1
            for order_id, when in delivered
            if not windows.get(order_id) or any(s <= at(when) <= e for s, e in windows[order_id])
        )
        (failed,) = con.execute(
            "SELECT count(*) FROM order_events "
            "WHERE kind = 'status_changed' AND to_status = 'failed'"
        ).fetchone()
        (orders,) = con.execute("SELECT count(*) FROM orders").fetchone()
        (still_open,) = con.execute(
            "SELECT count(*) FROM orders WHERE status NOT IN ('delivered', 'returned', 'cancelled')"
        ).fetchone()
        outbox = dict(con.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
        (reports,) = con.execute(
            "SELECT count(*) FROM outbox o "
            "JOIN member_roles r ON r.member_id = o.recipient_member_id "
            "WHERE o.template LIKE 'owner.report%' AND o.status = 'sent' AND r.role = 'owner'"
        ).fetchone()
    return {
        "orders": orders,
        "delivered": len(delivered),
        "failed": failed,
        "still_open": still_open,
        "on_time": on_time,
        "sent": outbox.get("sent", 0),
        "not_sent": sum(n for status, n in outbox.items() if status != "sent"),
        "reports": reports,
    }


def test_a_short_demo_day_ends_by_itself_and_prints_what_the_database_holds(
    tmp_path: Path, clean_env: dict[str, str]
):
    db_copy, out = tmp_path / "day.db", tmp_path / "report"
    command = [sys.executable, "-m", "lastmile", "demo", "--orders", "15", "--drivers", "2",
               "--speed", "1200", "--seed", "3", "--out", str(out),
               "--keep-db", str(db_copy)]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=LIMIT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the demo did not end within {LIMIT_S} s:\n{exc.stdout}\n{exc.stderr}")
    printed = done.stdout
    assert done.returncode == 0, printed + done.stderr
    figures = held(db_copy)
    line = re.search(r"orders (\d+): delivered (\d+), failed attempts (\d+), still open (\d+)",
                     printed)  # fmt: skip
    assert line, printed
    assert [int(g) for g in line.groups()] == [
        figures["orders"],
        figures["delivered"],
        figures["failed"],
        figures["still_open"],
    ]
    assert figures["orders"] == 15 and figures["delivered"] >= 10, printed
    on_time = re.search(r"on time: (\d+) of (\d+) delivered", printed)
    assert on_time and [int(g) for g in on_time.groups()] == [
        figures["on_time"],
        figures["delivered"],
    ]
    sent = re.search(r"notifications sent: (\d+); nothing lost", printed)
    assert sent and int(sent.group(1)) == figures["sent"] > 0, printed
    assert figures["not_sent"] == 0
    assert figures["reports"] == 3  # text, chart and CSV, to the owner's sandbox chat
    assert re.search(r"naive dispatch: [\d.]+ km", printed)
    assert "/sandbox" in printed and "/docs" in printed and "/t/" in printed
    files = sorted(p.suffix for p in out.rglob("*") if p.is_file())
    assert ".csv" in files and ".png" in files and ".txt" in files, files


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_demo_cleanly_without_a_summary(
    tmp_path: Path, clean_env: dict[str, str], sent: signal.Signals
):
    """Ctrl-C (or SIGTERM) mid-day: the service stops, the temporary folder goes, exit 130, no
    traceback and no summary of half a day."""
    command = [sys.executable, "-m", "lastmile", "demo", "--orders", "15", "--drivers", "2",
               "--speed", "60", "--out", str(tmp_path / "report")]  # fmt: skip
    with subprocess.Popen(
        command, cwd=tmp_path, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    ) as demo:  # fmt: skip
        assert demo.stdout is not None
        seen = []
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline:  # until the day is under way: its first links
            line = demo.stdout.readline()
            seen.append(line)
            if "tracking:" in line or not line:
                break
        assert any("tracking:" in line for line in seen), "".join(seen)
        demo.send_signal(sent)
        try:
            rest, errors = demo.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            pytest.fail(f"the demo did not stop within 30 s of {sent.name}")
    printed = "".join(seen) + rest
    assert demo.returncode == 130, printed + errors
    assert "Traceback" not in errors, errors
    assert "on time:" not in printed and "notifications sent" not in printed
