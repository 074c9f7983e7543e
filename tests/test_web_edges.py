"""The web app's edges, over real HTTP: tracking tokens that cannot be tokens, and request bodies
(sizes per route, the API key checked before a body is read)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import event

from core.db import Database
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
    async with site(db, tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
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
