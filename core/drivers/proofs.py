"""Proof of delivery: photos (checked, hashed, stored), the recipient's name, the customer's PIN."""

from __future__ import annotations

import hashlib
import hmac
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.drivers.stops import own_order, ref_of
from core.errors import DomainError
from core.models import Proof, ProofKind

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
    data_dir: Path,
    order_id: int,
    driver_id: int,
    data: bytes,
    *,
    max_bytes: int,
    channel_file_id: str | None = None,
) -> Proof:
    """Check and keep a proof photo under `data_dir/proofs/`, named by its SHA-256."""
    extension, content_type = check_image(data, max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    path = data_dir / "proofs" / digest[:2] / f"{digest}.{extension}"
    async with db.transaction() as session:
        await own_order(session, driver_id, order_id)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(data)
            temporary.replace(path)
        proof = Proof(
            order_id=order_id,
            driver_id=driver_id,
            kind=ProofKind.PHOTO,
            channel_file_id=channel_file_id,
            stored_path=str(path.relative_to(data_dir)),
            sha256=digest,
            size_bytes=len(data),
            content_type=content_type,
        )
        session.add(proof)
        await session.flush()
        return proof


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


async def stored_photo(db: Database, proof_id: int) -> Proof | None:
    """Proof `proof_id` when it has a stored photo."""
    async with db.reads() as session:
        proof = await session.get(Proof, proof_id)
    return proof if proof is not None and proof.stored_path else None


def stored_file(data_dir: Path, proof: Proof | None) -> Path | None:
    """Where a proof's photo is kept, if it is (still) there."""
    if proof is None or not proof.stored_path:
        return None
    path = data_dir / proof.stored_path
    return path if path.is_file() else None
