"""Signed, expiring links: a proof photo can be handed to a dispatcher or an API client as a URL
that works for a while (`APP_PROOF_LINK_MINUTES`) and cannot be altered or guessed.

The signature is HMAC-SHA256 over "<what>:<id>:<expires>" with the instance's secret key
(`APP_SECRET_KEY`, or a random key kept in `APP_DATA_DIR/secret.key`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import AppSettings
from core.errors import DomainError

KEY_FILE = "secret.key"
HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class BadLink(DomainError):
    """The signature does not match: the link was altered or made up."""


class LinkExpired(DomainError):
    """The link was genuine but is too old."""


def secret_key(app: AppSettings) -> bytes:
    """The configured key, or the one kept in the data directory (made on first use)."""
    if app.secret_key is not None and app.secret_key.get_secret_value():
        return app.secret_key.get_secret_value().encode()
    path = Path(app.data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(descriptor, "w") as file:
        key = secrets.token_hex(32)
        file.write(key + "\n")
    return key.encode()


class Signer:
    def __init__(self, key: bytes, base_url: str, ttl: timedelta) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def _signature(self, what: str, ident: int, expires: int) -> str:
        message = f"{what}:{ident}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def proof_url(self, proof_id: int, now: datetime) -> tuple[str, datetime]:
        """A link to proof `proof_id`'s photo, and when it stops working."""
        expires = int((now + self.ttl).timestamp())
        signature = self._signature("proof", proof_id, expires)
        url = f"{self.base_url}/proofs/{proof_id}?expires={expires}&signature={signature}"
        return url, datetime.fromtimestamp(expires, UTC)

    def check_proof(self, proof_id: int, expires: int, signature: str, now: datetime) -> None:
        """Raise `BadLink` or `LinkExpired` unless the link is genuine and current."""
        wanted = self._signature("proof", proof_id, expires)
        if not HEX_SIGNATURE.fullmatch(signature) or not hmac.compare_digest(wanted, signature):
            raise BadLink("link.bad")
        if now.timestamp() > expires:
            raise LinkExpired("link.expired")
