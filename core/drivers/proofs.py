"""Proof of delivery: photos (checked, hashed, stored), the recipient's name, the customer's PIN."""

from __future__ import annotations

import hmac
import io
import re
from datetime import datetime

from PIL import Image, UnidentifiedImageError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.drivers import signatures
from core.drivers.signatures import Drawing
from core.drivers.stops import own_order, ref_of
from core.errors import DomainError
from core.models import Driver, OrderStatus, Proof, ProofKind
from core.storage import Files
from core.webviews import initdata
from core.webviews.initdata import InitData

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
DONE = (OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.RETURNED)

IMAGE_TYPES = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
MAX_PIXELS = 50_000_000


def check_image(data: bytes, max_bytes: int) -> tuple[str, str]:
    """(file extension, content type) of a photo we accept, or a DomainError saying why not."""
    if len(data) > max_bytes:
        raise DomainError("proof.too_large", mb=round(max_bytes / 1_000_000))
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            if image.width * image.height > MAX_PIXELS:
                raise DomainError("proof.too_large", mb=round(max_bytes / 1_000_000))
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise DomainError("proof.not_image") from None
    if kind not in IMAGE_TYPES:
        raise DomainError("proof.not_image")
    return IMAGE_TYPES[kind]


async def save_photo(
    db: Database,
    files: Files,
    order_id: int,
    driver_id: int,
    data: bytes,
    *,
    max_bytes: int,
    channel_file_id: str | None = None,
) -> Proof:
    """Check and keep a proof photo (`files`, key `proofs/<ab>/<sha256>.<ext>`). An object
    store that is down does not lose it: it waits in the spool (`waiting()` tells)."""
    extension, content_type = check_image(data, max_bytes)
    async with db.reads() as session:  # a stranger's order: nothing kept
        await own_order(session, driver_id, order_id)
    stored, digest = await keep_file(files, data, extension)
    async with db.transaction() as session:
        await own_order(session, driver_id, order_id)
        proof = Proof(
            order_id=order_id,
            driver_id=driver_id,
            kind=ProofKind.PHOTO,
            channel_file_id=channel_file_id,
            stored_path=stored,
            sha256=digest,
            size_bytes=len(data),
            content_type=content_type,
        )
        session.add(proof)
        await session.flush()
        return proof


async def keep_file(files: Files, data: bytes, extension: str) -> tuple[str, str]:
    """Keep `data` under `proofs/`, named by its SHA-256 (written whole or not at all; spooled
    while the object store is down); (its key, the digest)."""
    kept = await files.keep(data, extension, "proofs")
    return kept.key, kept.sha256


async def waiting(files: Files, proof: Proof) -> bool:
    """Whether the proof's file still waits for the object store (kept, sent when it is back)."""
    return bool(proof.stored_path) and await files.spooled(proof.stored_path or "")


async def save_signature(
    db: Database,
    files: Files,
    order_id: int,
    driver_id: int,
    sign: Drawing,
    name: str,
    key: str,
    *,
    init_data: InitData | None = None,
    now: datetime,
) -> tuple[Proof, bool]:
    """A signature drawn on the pad, kept as SVG and PNG with their SHA-256, the time and where
    the driver was; (the proof, whether it is new). The pad's idempotency `key` makes a second
    submit of the same signature return the first proof; Mini App `init_data` is used up."""
    name = " ".join(name.split())
    if not 2 <= len(name) <= 200:
        raise DomainError("proof.name_length")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise DomainError("sign.bad_drawing")
    async with db.reads() as session:  # a stranger's order: nothing kept
        await own_order(session, driver_id, order_id)
    # kept before the transaction: an upload (or the spool's own write) never holds it open
    png_bytes, svg_bytes = signatures.png(sign), signatures.svg(sign)
    png_path, png_digest = await keep_file(files, png_bytes, "png")
    svg_path, svg_digest = await keep_file(files, svg_bytes, "svg")
    async with db.transaction() as session:
        order = await own_order(session, driver_id, order_id)
        statement = select(Proof).where(Proof.order_id == order_id, Proof.idempotency_key == key)
        if (existing := (await session.exec(statement)).first()) is not None:
            return existing, False
        if order.status in DONE:
            raise DomainError("sign.closed", ref=ref_of(order))
        if init_data is not None:
            await initdata.use_once(session, init_data, now)
        driver = await session.get(Driver, driver_id)
        proof = Proof(
            order_id=order_id,
            driver_id=driver_id,
            kind=ProofKind.SIGNATURE,
            recipient_name=name,
            stored_path=png_path,
            sha256=png_digest,
            size_bytes=len(png_bytes),
            content_type="image/png",
            signature_path=svg_path,
            signature_sha256=svg_digest,
            idempotency_key=key,
            lat=driver.last_lat if driver else None,
            lon=driver.last_lon if driver else None,
        )
        session.add(proof)
        await session.flush()
        return proof, True


async def by_key(db: Database, order_id: int, key: str) -> Proof | None:
    """The proof a pad submitted under idempotency `key`, if it was kept."""
    async with db.reads() as session:
        statement = select(Proof).where(Proof.order_id == order_id, Proof.idempotency_key == key)
        return (await session.exec(statement)).first()


async def save_recipient(db: Database, order_id: int, driver_id: int, name: str) -> Proof:
    """The name of who took the parcel (the chat version of a signature)."""
    name = " ".join(name.split())
    if not 2 <= len(name) <= 200:
        raise DomainError("proof.name_length")
    async with db.transaction() as session:
        await own_order(session, driver_id, order_id)
        proof = Proof(
            order_id=order_id, driver_id=driver_id, kind=ProofKind.SIGNATURE, recipient_name=name
        )
        session.add(proof)
        await session.flush()
        return proof


async def check_pin(db: Database, order_id: int, driver_id: int, pin: str) -> Proof:
    """The PIN the customer tells the driver at the door; a wrong one saves nothing."""
    async with db.transaction() as session:
        order = await own_order(session, driver_id, order_id)
        expected = (order.delivery_pin or "").encode()
        if not expected or not hmac.compare_digest(expected, pin.strip().encode()):
            raise DomainError("proof.pin_wrong", order=ref_of(order))
        proof = Proof(order_id=order_id, driver_id=driver_id, kind=ProofKind.PIN, pin_checked=True)
        session.add(proof)
        await session.flush()
        return proof


async def latest_photo(session: AsyncSession, order_id: int) -> Proof | None:
    """The order's most recent proof photo, in the caller's session."""
    statement = (
        select(Proof)
        .where(Proof.order_id == order_id, Proof.kind == ProofKind.PHOTO)
        .order_by(col(Proof.id).desc())
    )
    return (await session.exec(statement)).first()


async def latest(db: Database, order_id: int) -> Proof | None:
    """The order's most recent proof of delivery, if any (a photo before other kinds)."""
    async with db.reads() as session:
        if photo := await latest_photo(session, order_id):
            return photo
        statement = select(Proof).where(Proof.order_id == order_id).order_by(col(Proof.id).desc())
        return (await session.exec(statement)).first()


async def latest_drawn(session: AsyncSession, order_id: int) -> Proof | None:
    """The order's most recent signature drawn on the pad, in the caller's session."""
    statement = (
        select(Proof)
        .where(Proof.order_id == order_id, col(Proof.signature_sha256).is_not(None))
        .order_by(col(Proof.id).desc())
    )
    return (await session.exec(statement)).first()


async def latest_signature(db: Database, order_id: int) -> Proof | None:
    """The order's most recent signature drawn on the pad, if any."""
    async with db.reads() as session:
        return await latest_drawn(session, order_id)


async def stored_photo(db: Database, proof_id: int) -> Proof | None:
    """Proof `proof_id` when it has a stored photo."""
    async with db.reads() as session:
        proof = await session.get(Proof, proof_id)
    return proof if proof is not None and proof.stored_path else None


async def stored_file(files: Files, proof: Proof | None, *, svg: bool = False) -> bytes | None:
    """A proof's photo (or signature PNG; with `svg` its SVG), if it is kept. Raises
    `StorageError` when the store is down and the spool does not hold it."""
    stored = proof and (proof.signature_path if svg else proof.stored_path)
    if not stored:
        return None
    return await files.read(stored)
