"""Signed, expiring links to proof photos, over real HTTP: the app under uvicorn, a real JPEG
saved as a driver's proof, the link fetched with a plain httpx client (no API key). SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import stat
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.clock import system_clock
from core.config import Settings
from core.db import Database
from core.drivers import proofs
from core.merchants import apikeys
from core.models import Driver, OrderStatus, Proof
from core.tracking.links import KEY_FILE, Signer
from tests.conftest import free_port, serve
from tests.factories import add_driver, local_files, move
from tests.telegram_harness import jpeg
from web.app import create_app

S = OrderStatus
MAX_BYTES = 10_000_000
CHAT_IDS = itertools.count(7001)
TTL = timedelta(minutes=60)  # APP_PROOF_LINK_MINUTES by default
BAD_LINK = "This link is not valid: it was changed or cut short."
EXPIRED = "This link has expired; ask for a new one."
LINK = re.compile(
    r"(?P<base>http://127\.0\.0\.1:\d+)/proofs/(?P<id>\d+)\?expires=(?P<expires>\d+)"
    r"&signature=(?P<signature>[0-9a-f]{64})"
)
ORDER: dict[str, Any] = {
    "customer_name": "Ana Lima",
    "address": "Hauptstr. 5, Berlin",
    "lat": 52.52,
    "lon": 13.40,
    "time_windows": [{"start": "2026-11-24T09:00:00+01:00", "end": "2026-11-24T12:00:00+01:00"}],
}


class Clock:
    """The app's clock, set by the test; whole seconds, like the links' expiry."""

    def __init__(self) -> None:
        self.now = system_clock().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Instance:
    base: str
    api: httpx.AsyncClient
    clock: Clock
    settings: Settings

    async def proof(self, order_id: int) -> httpx.Response:
        return await self.api.get(f"/orders/{order_id}/proof")

    async def link(self, order_id: int) -> str:
        response = await self.proof(order_id)
        assert response.status_code == 200, response.text
        url = response.json()["photo_url"]
        assert url is not None
        return url


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_SECRET_KEY", raising=False)


@asynccontextmanager
async def instance(
    db: Database, data_dir: Path, *, secret_key: str | None = None, clock: Clock | None = None
) -> AsyncIterator[Instance]:
    """One Lastmile app under uvicorn whose APP_BASE_URL is where it really listens."""
    port = free_port()
    app: dict[str, Any] = {"base_url": f"http://127.0.0.1:{port}", "data_dir": data_dir}
    if secret_key is not None:
        app["secret_key"] = secret_key
    settings = Settings(app=app, _env_file=None)  # type: ignore[call-arg]
    clock = clock or Clock()
    _, secret = await apikeys.create_key(db, f"shop {port}")
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(
            serve(create_app(settings, db, clock=clock), port=port)
        )
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
            )
        )
        yield Instance(base, api, clock, settings)


@pytest.fixture
async def lastmile(db: Database, tmp_path: Path) -> AsyncIterator[Instance]:
    async with instance(db, tmp_path / "data", secret_key="test-key-1") as value:
        yield value


async def arrived(db: Database, app: Instance, ref: str, **changes: Any) -> tuple[int, Driver]:
    """An order made through the API, at the customer's door."""
    response = await app.api.post("/orders", json={**ORDER, "external_ref": ref, **changes})
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]
    driver = await add_driver(db, f"Driver {ref}", next(CHAT_IDS))
    for target in (S.ASSIGNED, S.OUT_FOR_DELIVERY, S.ARRIVED):
        await move(db, order_id, target, driver.id)
    return order_id, driver


async def delivered_with_photo(
    db: Database, app: Instance, ref: str, photo: bytes
) -> tuple[int, Proof]:
    order_id, driver = await arrived(db, app, ref)  # the API asks for a photo by default
    assert driver.id is not None
    proof = await proofs.save_photo(
        db, local_files(app.settings.app.data_dir), order_id, driver.id, photo, max_bytes=MAX_BYTES
    )
    await move(db, order_id, S.DELIVERED, driver.id)
    return order_id, proof


def parts(url: str) -> dict[str, str]:
    match = LINK.fullmatch(url)
    assert match, url
    return match.groupdict()


def link(base: str, proof_id: int | str, expires: int | str, signature: str) -> str:
    return f"{base}/proofs/{proof_id}?expires={expires}&signature={signature}"


def flip(text: str, at: int) -> str:
    """`text` with the character at `at` changed to another one of the same kind."""
    old = text[at]
    new = {"f": "e", "9": "8"}.get(old, "f" if old.isalpha() else "9")
    return text[:at] + new + text[at + 1 :]


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:  # no API key
        return await client.get(url)


def refused(response: httpx.Response, status: int, detail: str, photo: bytes) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"detail": detail}
    assert photo not in response.content


async def test_a_proof_link_serves_exactly_the_stored_photo(db: Database, lastmile: Instance):
    photo = jpeg(80, 60)
    order_id, proof = await delivered_with_photo(db, lastmile, "P-1", photo)

    answer = await lastmile.proof(order_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "kind", "captured_at", "recipient_name", "photo_url", "photo_expires_at", "signature"
    }  # fmt: skip
    assert (body["kind"], body["recipient_name"], body["signature"]) == ("photo", None, None)
    assert datetime.fromisoformat(body["captured_at"].replace("Z", "+00:00")) == proof.captured_at
    found = parts(body["photo_url"])
    assert found["base"] == lastmile.base and int(found["id"]) == proof.id
    expires_at = lastmile.clock.now + TTL
    assert int(found["expires"]) == int(expires_at.timestamp())
    assert datetime.fromisoformat(body["photo_expires_at"].replace("Z", "+00:00")) == expires_at

    got = await fetch(body["photo_url"])
    assert got.status_code == 200
    assert got.content == photo
    assert hashlib.sha256(got.content).hexdigest() == proof.sha256
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["cache-control"] == "private, max-age=3600"
    stored = lastmile.settings.app.data_dir / (proof.stored_path or "")
    assert stored.read_bytes() == photo

    # the same moment gives the same link; a later one a later expiry
    assert await lastmile.link(order_id) == body["photo_url"]
    lastmile.clock.now += timedelta(minutes=10)
    later = parts(await lastmile.link(order_id))
    assert int(later["expires"]) == int(found["expires"]) + 600
    assert later["signature"] != found["signature"]


async def test_altered_links_are_refused(db: Database, lastmile: Instance):
    photo = jpeg(80, 60)
    order_id, _ = await delivered_with_photo(db, lastmile, "A-1", photo)
    other_order, other = await delivered_with_photo(db, lastmile, "A-2", jpeg(40, 30))
    url = await lastmile.link(order_id)
    p = parts(url)
    base, ident, expires, signature = p["base"], p["id"], p["expires"], p["signature"]
    assert (await fetch(url)).status_code == 200

    forbidden = {
        "last signature character": link(base, ident, expires, flip(signature, 63)),
        "first signature character": link(base, ident, expires, flip(signature, 0)),
        "signature in capitals": link(base, ident, expires, signature.upper()),
        "signature cut short": link(base, ident, expires, signature[:63]),
        "empty signature": link(base, ident, expires, ""),
        "garbage signature": link(base, ident, expires, "zz" * 32),
        "id + 1": link(base, int(ident) + 1, expires, signature),
        "another proof's id": link(base, other.id, expires, signature),
        "id digit": link(base, flip(ident, 0), expires, signature),
        "expires + 1": link(base, ident, int(expires) + 1, signature),
        "expires - 1": link(base, ident, int(expires) - 1, signature),
        "expires digit": link(base, ident, flip(expires, 3), signature),
        "expires a year later": link(base, ident, int(expires) + 365 * 86400, signature),
        "another proof's signature": link(
            base, ident, expires, parts(await lastmile.link(other_order))["signature"]
        ),
    }
    for what, altered in forbidden.items():
        assert altered != url, what
        response = await fetch(altered)
        assert response.status_code == 403, (what, response.status_code)
        refused(response, 403, BAD_LINK, photo)

    malformed = {
        "no signature": f"{base}/proofs/{ident}?expires={expires}",
        "no expiry": f"{base}/proofs/{ident}?signature={signature}",
        "signature too long": link(base, ident, expires, signature + "0"),
        "expires not a number": link(base, ident, "soon", signature),
        "negative expires": link(base, ident, -1, signature),
        "id not a number": link(base, "abc", expires, signature),
        "id zero": link(base, 0, expires, signature),
    }
    for what, bad in malformed.items():
        response = await fetch(bad)
        assert response.status_code == 422, (what, response.status_code)
        assert photo not in response.content
    assert (await fetch(url)).content == photo  # the genuine link still works


async def test_a_link_past_its_expiry_answers_410(db: Database, lastmile: Instance):
    photo = jpeg(80, 60)
    order_id, proof = await delivered_with_photo(db, lastmile, "E-1", photo)
    assert proof.id is not None
    url = await lastmile.link(order_id)
    expires = int(parts(url)["expires"])

    lastmile.clock.now = datetime.fromtimestamp(expires, UTC)  # its last second still works
    assert (await fetch(url)).content == photo
    lastmile.clock.now += timedelta(seconds=1)
    refused(await fetch(url), 410, EXPIRED, photo)
    # an altered link says nothing about expiry
    p = parts(url)
    refused(
        await fetch(link(p["base"], p["id"], expires, flip(p["signature"], 5))),
        403,
        BAD_LINK,
        photo,
    )

    fresh = await lastmile.link(order_id)  # ask again: a new link that works
    assert fresh != url and (await fetch(fresh)).content == photo

    # a link made an hour and a minute ago by a signer with this instance's key
    signer = Signer(b"test-key-1", lastmile.base, TTL)
    old, old_expiry = signer.proof_url(proof.id, lastmile.clock.now - TTL - timedelta(minutes=1))
    assert old_expiry < lastmile.clock.now
    refused(await fetch(old), 410, EXPIRED, photo)
    current, _ = signer.proof_url(proof.id, lastmile.clock.now)
    assert current == fresh
    assert (await fetch(current)).content == photo


async def test_proofs_without_a_photo(db: Database, lastmile: Instance):
    photo = jpeg(80, 60)
    # no proof at all, and no order at all
    waiting, _ = await arrived(db, lastmile, "N-1")
    response = await lastmile.proof(waiting)
    assert response.status_code == 404
    assert response.json() == {"detail": f"Order {waiting} has no proof of delivery."}
    response = await lastmile.proof(999999)
    assert response.status_code == 404 and response.json() == {
        "detail": "There is no order 999999."
    }

    # the customer's PIN only
    pinned, driver = await arrived(db, lastmile, "N-2", proof_required="pin", delivery_pin="4321")
    assert driver.id is not None
    pin = await proofs.check_pin(db, pinned, driver.id, "4321")
    await move(db, pinned, S.DELIVERED, driver.id)
    body = (await lastmile.proof(pinned)).json()
    assert (body["kind"], body["photo_url"], body["photo_expires_at"]) == ("pin", None, None)
    assert body["recipient_name"] is None

    # the recipient's name only
    named, driver = await arrived(db, lastmile, "N-3", proof_required="signature")
    assert driver.id is not None
    await proofs.save_recipient(db, named, driver.id, "  Bea   Braun ")
    await move(db, named, S.DELIVERED, driver.id)
    body = (await lastmile.proof(named)).json()
    assert (body["kind"], body["recipient_name"], body["photo_url"]) == (
        "signature",
        "Bea Braun",
        None,
    )

    # genuine signatures for proofs with no photo to serve: unknown, PIN, file gone
    signer = Signer(b"test-key-1", lastmile.base, TTL)
    for proof_id in (999999, pin.id):
        assert proof_id is not None
        url, _ = signer.proof_url(proof_id, lastmile.clock.now)
        response = await fetch(url)
        assert response.status_code == 404, (proof_id, response.text)
        assert response.json() == {"detail": "There is no photo behind this link (any more)."}
    gone_order, gone = await delivered_with_photo(db, lastmile, "N-4", photo)
    url = await lastmile.link(gone_order)
    (lastmile.settings.app.data_dir / (gone.stored_path or "")).unlink()
    response = await fetch(url)
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no photo behind this link (any more)."}

    # the proof endpoint needs an API key, the link does not
    keyless = await lastmile.api.get(f"/orders/{named}/proof", headers={"Authorization": ""})
    assert keyless.status_code == 401


async def test_the_key_file_is_private_and_kept_across_restarts(db: Database, tmp_path: Path):
    data = tmp_path / "data"
    key_file = data / KEY_FILE
    photo = jpeg(80, 60)
    clock = Clock()
    async with instance(db, data, clock=clock) as first:
        assert first.settings.app.secret_key is None
        order_id, _ = await delivered_with_photo(db, first, "K-1", photo)
        assert not key_file.exists()  # made on first use
        url = await first.link(order_id)
        assert (await fetch(url)).content == photo
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", content)
    signature = parts(url)["signature"]
    message = f"proof:{parts(url)['id']}:{parts(url)['expires']}".encode()
    key = content.strip().encode()
    assert signature == hmac.new(key, message, hashlib.sha256).hexdigest()

    async with instance(db, data, clock=clock) as second:  # a restart, a new port
        moved = url.replace(parts(url)["base"], second.base)
        assert (await fetch(moved)).content == photo
        assert parts(await second.link(order_id))["signature"] == signature
    assert key_file.read_text() == content

    # another data directory means another key: the link does not work there
    async with instance(db, tmp_path / "elsewhere", clock=clock) as third:
        response = await fetch(url.replace(parts(url)["base"], third.base))
        assert response.status_code == 403
    assert (tmp_path / "elsewhere" / KEY_FILE).read_text() != content


async def test_a_configured_key_is_shared_by_instances(db: Database, tmp_path: Path):
    data = tmp_path / "data"  # shared storage for the photos
    photo = jpeg(80, 60)
    clock = Clock()
    async with (
        instance(db, data, secret_key="shared-key-1", clock=clock) as one,
        instance(db, data, secret_key="shared-key-1", clock=clock) as two,
        instance(db, data, secret_key="another-key", clock=clock) as three,
    ):
        order_id, _ = await delivered_with_photo(db, one, "C-1", photo)
        url = await one.link(order_id)
        base = parts(url)["base"]
        assert base == one.base
        assert (await fetch(url.replace(base, two.base))).content == photo
        assert await two.link(order_id) == url.replace(base, two.base)
        refused(await fetch(url.replace(base, three.base)), 403, BAD_LINK, photo)
        back = await three.link(order_id)
        refused(await fetch(back.replace(three.base, one.base)), 403, BAD_LINK, photo)
    assert not (data / KEY_FILE).exists()  # a configured key writes no file


async def test_an_empty_key_file_is_not_used_as_the_key(db: Database, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    key_file = data / KEY_FILE
    key_file.touch(mode=0o600)
    photo = jpeg(80, 60)
    async with instance(db, data) as app:
        order_id, proof = await delivered_with_photo(db, app, "Z-1", photo)
        url = await app.link(order_id)
        forger = Signer(b"", app.base, timedelta(days=3650))
        forged, _ = forger.proof_url(proof.id or 0, app.clock.now)
        response = await fetch(forged)
        assert response.status_code == 403, "a link signed with an empty key was accepted"
        assert (await fetch(url)).content == photo
