"""Where files live: proof photos, signatures and report files, by key (`proofs/ab/<sha256>.jpg`,
`reports/<period>/<language>/<name>`), in the local folder (`APP_DATA_DIR`, the default) or in an
S3-compatible object store (`STORAGE_URL=s3://bucket/prefix`), so that every instance reads what
any instance kept.

`Files` is what the rest of the core uses. A file the object store cannot take when it is kept
(down, timing out, refusing our keys) is not lost: it is held in the database (`SpooledFile`)
and the spool worker uploads it when the store takes it again; readers find it there meanwhile.
The S3 client is boto3's, run in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from core.config import StorageSettings
from core.db import Database
from core.models import SpooledFile

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)
# a key: segments of letters, digits, ".", "_" and "-", each starting with a letter or digit
# (so no "..", no "/" at either end, nothing leading out of the folder or prefix)
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
MAX_KEY = 512
# S3 error codes that mean "our settings are wrong", not "the store is down for a while"
REFUSALS = {
    "AccessDenied": "the store refused the access key (AccessDenied)",
    "InvalidAccessKeyId": "the store does not know STORAGE_S3_ACCESS_KEY",
    "SignatureDoesNotMatch": "STORAGE_S3_SECRET_KEY does not match STORAGE_S3_ACCESS_KEY",
    "NoSuchBucket": "the bucket in STORAGE_URL does not exist",
    "AllAccessDisabled": "the store refused the access key (AllAccessDisabled)",
}


class StorageError(Exception):
    """A file could not be kept or read; `str()` says why in one line."""


class BadKey(StorageError):
    """A key that is not one (it would lead outside the folder or prefix, or is malformed)."""


class StorageUnavailable(StorageError):
    """The object store did not answer (down, cut off, timing out, or answering 5xx)."""


class StorageRefused(StorageError):
    """The object store answered no: a wrong bucket or wrong keys (an operator's mistake)."""


def check_key(key: str) -> str:
    if len(key) > MAX_KEY or not KEY.fullmatch(key):
        raise BadKey(f"not a storage key: {key[:80]!r}")
    return key


class Storage(Protocol):
    """A place for files by key. Keys are checked (`check_key`) before any is used."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def check(self) -> None: ...

    @property
    def remote(self) -> bool: ...


class LocalStorage:
    """Files under a folder, written whole or not at all."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / check_key(key)).resolve()
        if not path.is_relative_to(root):  # a symlink inside the folder pointing out of it
            raise BadKey(f"not a storage key: {key[:80]!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Into a temporary file of its own first (two writers of one key at once, say a pad
        submitted twice, never move each other's file away), then moved into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.chmod(partial, 0o644)
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def check(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)


class S3Storage:
    """Objects in an S3-compatible store, under `bucket/prefix/`, through boto3 in a thread."""

    remote = True

    def __init__(self, settings: StorageSettings) -> None:
        assert settings.bucket is not None
        self.bucket, self.prefix = settings.bucket, settings.prefix
        self.settings = settings
        self._client: BaseClient | None = None

    @property
    def client(self) -> BaseClient:
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=str(s.s3_endpoint_url) if s.s3_endpoint_url else None,
                region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key.get_secret_value() if s.s3_access_key else None,
                aws_secret_access_key=(
                    s.s3_secret_key.get_secret_value() if s.s3_secret_key else None
                ),
                config=Config(
                    connect_timeout=s.timeout_s,
                    read_timeout=s.timeout_s,
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                ),
            )
        return self._client

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _call(self, method: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(getattr(self.client, method), **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(params.get("Key", "")) from None
            if code in REFUSALS:
                raise StorageRefused(f"{REFUSALS[code]} ({self.where})") from None
            if status == 403 or (status == 400 and method == "head_bucket"):
                refused = "the store refused STORAGE_S3_ACCESS_KEY/SECRET_KEY or the bucket"
                raise StorageRefused(f"{refused} ({self.where})") from None
            raise StorageUnavailable(f"{code or status} from the store ({self.where})") from None
        except BotoCoreError as exc:  # could not connect, timed out, dropped connection
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from None

    @property
    def where(self) -> str:
        endpoint = self.settings.s3_endpoint_url or "AWS"
        return f"s3://{self.bucket}/{self.prefix} at {endpoint}".replace("/ at", " at")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        name = self._name(key)
        await self._call(
            "put_object", Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
        )

    async def get(self, key: str) -> bytes | None:
        name = self._name(key)
        try:
            answer = await self._call("get_object", Bucket=self.bucket, Key=name)
        except FileNotFoundError:
            return None
        body = answer["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        except Exception as exc:  # the connection dropped while reading
            raise StorageUnavailable(f"{type(exc).__name__} reading {key}") from None
        finally:
            body.close()
        return data

    async def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            await self._call("head_object", Bucket=self.bucket, Key=name)
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=self._name(key))

    async def check(self) -> None:
        """The bucket is there and the keys open it (`StorageRefused` says which is wrong);
        `StorageUnavailable` when the store does not answer."""
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise StorageRefused(f"{REFUSALS['NoSuchBucket']} ({self.where})") from None


def storage_from_settings(settings: StorageSettings, data_dir: Path) -> Storage:
    return S3Storage(settings) if settings.bucket else LocalStorage(data_dir)


@dataclass(frozen=True)
class Kept:
    key: str
    sha256: str
    size: int
    spooled: bool  # held in the database until the object store takes it


def content_key(folder: str, data: bytes, extension: str) -> tuple[str, str]:
    """(the key a file is kept under, named by its SHA-256, its digest)."""
    digest = hashlib.sha256(data).hexdigest()
    return check_key(f"{folder}/{digest[:2]}/{digest}.{extension}"), digest


class Files:
    """Keep and read files by key through a `Storage`; with an object store, what it cannot
    take is spooled in the database and uploaded by `run()` (started by `start()`)."""

    def __init__(
        self, storage: Storage, db: Database | None = None, *, retry_s: float = 10.0
    ) -> None:
        """`db` holds the spool; an object store needs one, the local folder none."""
        if storage.remote and db is None:
            raise ValueError("an object store needs the database for its spool")
        self.storage = storage
        self.db = db
        self.retry_s = retry_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def keep(self, data: bytes, extension: str, folder: str = "proofs") -> Kept:
        """Keep `data` under a key named by its SHA-256."""
        key, digest = content_key(folder, data, extension)
        stored = await self.put(key, data, _content_type(extension))
        return Kept(key, digest, len(data), spooled=not stored)

    async def put(self, key: str, data: bytes, content_type: str = "") -> bool:
        """Keep `data` under `key`: True once in storage, False when held in the spool (the
        object store did not take it; it is uploaded later). An empty file is refused."""
        check_key(key)
        if not data:
            raise StorageError(f"refusing to keep an empty file as {key}")
        content_type = content_type or _content_type(key.rpartition(".")[2])
        try:
            await self.storage.put(key, data, content_type)
            return True
        except StorageError as exc:
            if not self.storage.remote:
                raise
            level = logging.ERROR if isinstance(exc, StorageRefused) else logging.WARNING
            log.log(level, "object store did not take %s (%s): spooled for upload", key, exc)
            await self._spool(key, data, str(exc))
            return False

    async def _spool(self, key: str, data: bytes, error: str) -> None:
        assert self.db is not None
        try:
            async with self.db.transaction() as session:
                if await session.get(SpooledFile, key) is None:
                    session.add(SpooledFile(key=key, data=data, last_error=error[:1000]))
        except IntegrityError:  # another instance spooled the same key at the same moment
            log.info("%s was spooled by another instance meanwhile", key)
        self._wake.set()

    async def read(self, key: str) -> bytes | None:
        """The file under `key`, or None when there is none (or the key is not one). Raises
        `StorageUnavailable` when the store is down and the spool does not hold it."""
        try:
            data = await self.storage.get(check_key(key))
        except BadKey:
            log.warning("refused to read %r: not a storage key", key[:80])
            return None
        except StorageError:
            if (held := await self._held(key)) is not None:
                return held
            raise
        if data is None and self.storage.remote:
            return await self._held(key)
        return data

    async def exists(self, key: str) -> bool:
        try:
            check_key(key)
            if self.storage.remote and await self._held(key) is not None:
                return True
            return await self.storage.exists(key)
        except BadKey:
            return False

    async def delete(self, key: str) -> None:
        await self.storage.delete(key)

    async def spooled(self, key: str) -> bool:
        """Whether `key` still waits in the spool for the object store."""
        if self.db is None:
            return False
        async with self.db.reads() as session:
            return await session.get(SpooledFile, key) is not None

    async def _held(self, key: str) -> bytes | None:
        if self.db is None:
            return None
        async with self.db.reads() as session:
            row = await session.get(SpooledFile, key)
            return bytes(row.data) if row is not None else None

    async def check(self) -> None:
        """At start: a wrong bucket or wrong keys stop the service (`StorageRefused`); a store
        that does not answer is logged, and files are spooled until it does."""
        try:
            await self.storage.check()
        except StorageUnavailable as exc:
            log.warning("object store not reachable at start (%s): files are spooled", exc)

    async def flush(self) -> int:
        """Upload what the spool holds, oldest first; how many went. A file the store still
        refuses stays, with the error and its attempts counted."""
        if self.db is None:
            return 0
        db = self.db
        async with db.reads() as session:
            statement = select(SpooledFile.key).order_by(col(SpooledFile.kept_at))
            keys = list(await session.exec(statement))
        uploaded = 0
        for key in keys:
            data = await self._held(key)
            if data is None:  # another instance uploaded it meanwhile
                continue
            try:
                await self.storage.put(key, data, _content_type(key.rpartition(".")[2]))
            except StorageError as exc:
                async with db.transaction() as session:
                    row = await session.get(SpooledFile, key)
                    if row is not None:
                        row.attempts += 1
                        row.last_error = str(exc)[:1000]
                        session.add(row)
                        attempts = row.attempts
                    else:
                        attempts = 0
                level = logging.ERROR if isinstance(exc, StorageRefused) else logging.WARNING
                log.log(level, "upload of %s failed (attempt %d): %s", key, attempts, exc)
                return uploaded  # the store is still out: wait before trying the rest
            async with db.transaction() as session:  # only now: nothing lost in between
                row = await session.get(SpooledFile, key)
                if row is not None:
                    await session.delete(row)
            uploaded += 1
            log.info("spooled file %s uploaded", key)
        return uploaded

    async def run(self) -> None:
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database out for a while: try again later
                log.warning("spool flush failed", exc_info=True)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.retry_s)
            if self._wake.is_set():  # a file was just spooled: the store has just failed
                await asyncio.sleep(self.retry_s)

    def start(self) -> None:
        if self.storage.remote and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="file-spool")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "svg": "image/svg+xml",
    "csv": "text/csv",
}


def _content_type(extension: str) -> str:
    return CONTENT_TYPES.get(extension.lower(), "application/octet-stream")
