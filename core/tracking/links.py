"""Signed, expiring links: a proof photo can be handed to a dispatcher or an API client as a URL
that works for a while (`APP_PROOF_LINK_MINUTES`) and cannot be altered or guessed.

The signature is HMAC-SHA256 over "<what>:<id>:<expires>" with the instance's secret key
(`APP_SECRET_KEY`, or a random key kept in `APP_DATA_DIR/secret.key`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import AppSettings
from core.errors import DomainError

log = logging.getLogger(__name__)
KEY_FILE = "secret.key"
HEX_SIGNATURE = HEX_KEY = re.compile(r"[0-9a-f]{64}")


class BadLink(DomainError):
    """The signature does not match: the link was altered or made up."""


class LinkExpired(DomainError):
    """The link was genuine but is too old."""


def secret_key(app: AppSettings) -> bytes:
    """The configured key, or the one kept in the data directory (made on first use; one that
    is not a key — say, left empty by a crash — is replaced)."""
    if app.secret_key is not None and app.secret_key.get_secret_value():
        return app.secret_key.get_secret_value().encode()
    path = Path(app.data_dir) / KEY_FILE
    if not path.exists():
        _write_key_file(path, replace=False)
    key = path.read_text().strip()
    if not HEX_KEY.fullmatch(key):
        log.warning("%s is not a key (64 hex digits): making a new one", path)
        _write_key_file(path, replace=True)
        key = path.read_text().strip()
    return key.encode()


def _write_key_file(path: Path, *, replace: bool) -> None:
    """Write a new key whole or not at all: into a private temporary file first, then moved
    into place; without `replace` a key another process wrote meanwhile wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class Signer:
    def __init__(self, key: bytes, base_url: str, ttl: timedelta) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl

    def _signature(self, what: str, ident: int, expires: int) -> str:
        message = f"{what}:{ident}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def proof_url(self, proof_id: int, now: datetime, *, svg: bool = False) -> tuple[str, datetime]:
        """A link to proof `proof_id`'s photo (or its signature's PNG), or with `svg` to its
        signature's SVG, and when it stops working."""
        expires = int((now + self.ttl).timestamp())
        what, tail = ("proof-svg", "/signature.svg") if svg else ("proof", "")
        signature = self._signature(what, proof_id, expires)
        url = f"{self.base_url}/proofs/{proof_id}{tail}?expires={expires}&signature={signature}"
        return url, datetime.fromtimestamp(expires, UTC)

    def check_proof(
        self, proof_id: int, expires: int, signature: str, now: datetime, *, svg: bool = False
    ) -> None:
        """Raise `BadLink` or `LinkExpired` unless the link is genuine and current."""
        wanted = self._signature("proof-svg" if svg else "proof", proof_id, expires)
        if not HEX_SIGNATURE.fullmatch(signature) or not hmac.compare_digest(wanted, signature):
            raise BadLink("link.bad")
        if now.timestamp() > expires:
            raise LinkExpired("link.expired")
