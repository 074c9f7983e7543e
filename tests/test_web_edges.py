"""The web app's edges, over real HTTP: tracking tokens that cannot be tokens, and request bodies
(sizes per route, the API key checked before a body is read)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event

from core.db import Database
from core.merchants import apikeys
from core.models import Order
from tests.factories import count
from tests.telegram_harness import SECRET, running_bot
from tests.test_api import ORDER
from tests.test_tracking_page import day, site

BAD_TOKENS = [
    "%00x",  # the NUL that broke PostgreSQL reads
    "%00" + "a" * 23,  # 24 characters, one of them NUL
    "a" * 23,
    "a" * 25,
    "a" * 200,
    "%C3%A4" * 24,  # ä: not URL-safe base64
    "%FF" * 24,  # not UTF-8 at all
    "abc.def+ghi/jkl=mnopqrstu"[:24].replace("/", "~"),
    "%20" * 24,
]
ROUTES = ["/t/{}", "/t/{}.json", "/t/{}/events", "/t/{}/qr.png", "/t/{}/photo"]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements that read orders by tracking token while the block runs."""
    seen: list[str] = []

    def record(_conn, _cursor, statement: str, *_args) -> None:
        if "tracking_token" in statement and "FROM orders" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_token_that_cannot_be_one_is_refused_before_any_query(db: Database, tmp_path: Path):
    mine, _, _ = await day(db)
    # no autopilot: its start-up re-plan would query while the tokens are tried
    manual = {"mode": "manual"}
    async with (
        site(db, tmp_path, dispatch=manual) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        with statements(db) as seen:
            for token in BAD_TOKENS:
                for route in ROUTES:
                    answer = await http.get(route.format(token))
                    assert answer.status_code == 404, (route.format(token), answer.status_code)
                rated = await http.post(f"/t/{token}/rating", data={"stars": "5"})
                assert rated.status_code == 404, (token, rated.status_code)
        assert seen == []
        assert (await http.get(f"/t/{mine.tracking_token}.json")).status_code == 200


async def test_a_bad_token_never_fails_the_reads_asked_for_with_it(db: Database, tmp_path: Path):
    mine, _, other = await day(db)
    tokens = [mine.tracking_token, other.tracking_token, "%00x", mine.tracking_token] * 50
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        answers = await asyncio.gather(*(http.get(f"/t/{token}.json") for token in tokens))
    codes = Counter(
        (token if token == "%00x" else "real", answer.status_code)
        for token, answer in zip(tokens, answers, strict=True)
    )
    assert codes == {("real", 200): 150, ("%00x", 404): 50}, codes


LARGE = 64 * 1024 * 1024  # far more than any route takes
PIECE = b"x" * 65536
IN_FLIGHT = 16 * 1024 * 1024  # socket buffers: what a client may send before it is answered


async def push(
    base: str, path: str, size: int, *, chunked: bool, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, int]:
    """POST a `size`-byte body in 64 KB pieces while waiting for the answer: (status, headers,
    body, bytes sent when the answer came). A server that reads a body whole before it answers
    is sent all of it."""
    host, port = base.removeprefix("http://").split(":")
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", length]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return await asyncio.to_thread(
        _push, host, int(port), ("\r\n".join(lines) + "\r\n\r\n").encode(), size, chunked
    )


def _push(
    host: str, port: int, head: bytes, size: int, chunked: bool
) -> tuple[int, dict[str, str], bytes, int]:
    """`push` on a plain socket: one thread sends, this one reads. (An asyncio transport drops
    an answer already received when its own write meets the reset that a server closing on an
    unread body sends; a socket still hands it out.)"""
    sent = 0
    connection = socket.create_connection((host, port), timeout=60)

    def send_body() -> None:
        nonlocal sent
        with contextlib.suppress(OSError):
            connection.sendall(head)
            while sent < size:
                connection.sendall(b"%x\r\n%b\r\n" % (len(PIECE), PIECE) if chunked else PIECE)
                sent += len(PIECE)
            connection.sendall(b"0\r\n\r\n" if chunked else b"")

    sending = threading.Thread(target=send_body, daemon=True)
    sending.start()
    try:
        received = b""
        while b"\r\n\r\n" not in received:
            piece = connection.recv(65536)
            if not piece:
                raise ConnectionError(f"closed without an answer after {sent} bytes")
            received += piece
        when = sent
        head_text, _, body = received.partition(b"\r\n\r\n")
        status, *fields = head_text.decode().split("\r\n")
        named = {n.lower(): v for n, v in (f.split(": ", 1) for f in fields if f)}
        while len(body) < int(named.get("content-length", 0)):
            piece = connection.recv(65536)
            if not piece:
                break
            body += piece
    finally:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()
        sending.join(timeout=60)
    return int(status.split()[1]), named, body, when


@pytest.fixture
async def served(db: Database, tmp_path: Path) -> AsyncIterator[tuple[str, str, str]]:
    """The app under uvicorn: (base URL, an API key, a tracking token)."""
    mine, _, _ = await day(db)
    _, secret = await apikeys.create_key(db, "shop")
    async with site(db, tmp_path) as base:
        yield base, secret, mine.tracking_token


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_request_without_a_key_is_refused_before_its_body_is_read(served, chunked: bool):
    base, _, _ = served
    for headers in ({}, {"Authorization": "Bearer lm_00000000_" + "x" * 43}):
        status, named, body, sent = await push(
            base, "/api/v1/orders", LARGE, chunked=chunked, headers=headers
        )
        assert (status, sent < IN_FLIGHT) == (401, True), f"{sent / 2**20:.1f} MB sent first"
        assert "API key" in json.loads(body)["detail"]
        assert named["connection"] == "close" and named["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "limit_kb"),
    [("/api/v1/orders", 64), ("/api/v1/orders/batch", 4096), ("/t/{token}/rating", 16)],
)
async def test_a_body_past_its_routes_limit_is_cut_off(served, chunked: bool, path, limit_kb):
    base, secret, token = served
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if "rating" in path:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, named, body, sent = await push(
        base, path.format(token=token), LARGE, chunked=chunked, headers=headers
    )
    assert (status, sent < limit_kb * 1024 + IN_FLIGHT) == (413, True), f"{sent / 2**20:.1f} MB"
    assert json.loads(body)["detail"] == (
        f"The request body is larger than the {limit_kb} KB this address accepts."
    )
    assert named["connection"] == "close"


async def test_bodies_within_their_limits_are_taken(served, db: Database):
    base, secret, token = served
    long = {**ORDER, "notes": "ä" * 2000}  # about 4.5 KB of JSON each
    batch = {"orders": [{**long, "external_ref": f"L-{n}"} for n in range(500)]}
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        taken = await http.post("/api/v1/orders/batch", json=batch)
        assert len(taken.request.content) > 2 * 1024 * 1024
        assert taken.status_code == 200 and taken.json()["created"] == 500, taken.text[:300]
        one = await http.post("/api/v1/orders", json={**long, "external_ref": "L-one"})
        assert one.status_code == 201, one.text
        too_big = await http.post("/api/v1/orders", json=batch)
        assert too_big.status_code == 413
        rating = await http.post(f"/t/{token}/rating", data={"stars": "5", "comment": "ä" * 1000})
        assert rating.status_code == 409  # read whole (about 9 KB): not delivered yet
    assert await count(db, Order) == 500 + 1 + 2  # and the day's two


async def test_the_telegram_webhook_takes_at_most_a_megabyte(db: Database, tmp_path: Path):
    async with running_bot(db, tmp_path) as bot:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        status, _, _, sent = await push(
            bot.base_url, "/webhooks/telegram", LARGE, chunked=True, headers=headers
        )
    assert (status, sent < 1024 * 1024 + IN_FLIGHT) == (413, True), f"{sent / 2**20:.1f} MB"
