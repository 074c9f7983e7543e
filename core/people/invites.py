"""Invite links: a single-use token that grants a role, as a Telegram deep link or a wa.me link
that opens a WhatsApp chat with the code typed in, and a QR code."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from datetime import timedelta
from urllib.parse import quote

import qrcode
from qrcode.image.pil import PilImage

from core.db import Database
from core.errors import DomainError
from core.models import Invite, Role

INVITABLE = (Role.DRIVER, Role.DISPATCHER, Role.OWNER)
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
MAX_VALIDITY = timedelta(days=90)


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w`: at least a minute, at most 90 days."""
    match = DURATION.match(text)
    if not match:
        raise DomainError("error.duration_form", text=text)
    amount, unit = int(match.group(1)), match.group(2).lower()
    duration = timedelta(seconds=amount * UNITS[unit])
    if not timedelta(minutes=1) <= duration <= MAX_VALIDITY:
        raise DomainError("error.duration_range", text=text)
    return duration


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={token}"


def whatsapp_link(phone_number: str, token: str) -> str:
    """A link that opens a WhatsApp chat with our number, `start <token>` typed in already."""
    return f"https://wa.me/{phone_number}?text={quote(f'start {token}')}"


def qr_png(text: str) -> bytes:
    image = qrcode.make(text, image_factory=PilImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


async def create_invite(
    db: Database, role: Role, valid_for: timedelta, created_by: int | None = None
) -> tuple[Invite, str]:
    """Save a new invite; return it and its token (shown once, only its hash is kept)."""
    if role not in INVITABLE:
        raise DomainError("error.invite_role")
    token = secrets.token_urlsafe(24)  # 192 bits; Telegram start parameters allow 64 chars
    now = db.now()
    invite = Invite(
        token_hash=token_hash(token),
        role=role,
        created_by=created_by,
        created_at=now,
        expires_at=now + valid_for,
    )
    async with db.transaction() as session:
        session.add(invite)
    return invite, token
