"""An S3 or MinIO bucket (with a key prefix) as an :class:`~overnight.storage.base.ObjectStore`.

Uses the ``minio`` SDK only. A single PUT is atomic in S3, so ``write_bytes`` needs nothing more;
``write_stream`` uploads in :data:`PART_SIZE_BYTES` parts without knowing the length first.
Errors from the SDK and from urllib3 become overnight's own: a missing key is
:class:`ObjectNotFoundError`; a dropped connection, a 5xx or ``SlowDown`` is
:class:`TransientError` (worth retrying); refused credentials are :class:`StorageError` (or
:class:`OutputNotWritableError` on a write) with a hint.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from overnight.errors import (
    ObjectNotFoundError,
    OutputNotWritableError,
    StorageError,
    TransientError,
)
from overnight.storage.base import ObjectInfo
from overnight.storage.keys import validate_key, validate_prefix
from overnight.storage.local import atomic_write

logger = logging.getLogger(__name__)

#: Multipart part size for streamed uploads (bytes); S3 allows 10,000 parts, so ≤ 160 GiB.
PART_SIZE_BYTES = 16 * 1024 * 1024
#: Read size when streaming a download to a file (bytes).
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
#: How often a conditional PUT is retried after S3 answers 409 ConditionalRequestConflict.
CONDITIONAL_PUT_ATTEMPTS = 5
#: Pause between those retries (s), doubled each time.
CONDITIONAL_PUT_BACKOFF_S = 0.05

_NOT_FOUND = {"NoSuchKey", "NoSuchObject"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
    "InvalidToken",
    "ExpiredToken",
}
_TRANSIENT = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "OperationAborted",
    "ConditionalRequestConflict",
    "XMinioServerNotInitialized",
    "XMinioStorageFull",
}
_DENIED_HINT = "check OVERNIGHT_S3_ACCESS_KEY / OVERNIGHT_S3_SECRET_KEY and the bucket policy"


def map_s3_error(err: Exception, what: str, *, writing: bool = False) -> Exception:
    """The overnight exception for an SDK or connection error met while doing ``what``.

    Parameters
    ----------
    err : Exception
        A ``minio`` :class:`S3Error`, :class:`ServerError`, :class:`InvalidResponseError` or a
        ``urllib3`` :class:`~urllib3.exceptions.HTTPError`.
    what : str
        The operation and object, e.g. ``"read s3://lab/raw/a.tif"``, quoted in the message.
    writing : bool
        Whether ``what`` writes: refused credentials then give :class:`OutputNotWritableError`.

    Returns
    -------
    Exception
        :class:`ObjectNotFoundError`, :class:`TransientError`, :class:`OutputNotWritableError`
        or :class:`StorageError`; other exceptions are returned unchanged.
    """
    if isinstance(err, S3Error):
        status = err.response.status if err.response is not None else 0
        message = f"cannot {what}: {err.code}: {err.message}"
        if err.code in _NOT_FOUND:
            return ObjectNotFoundError(f"cannot {what}: no such object")
        if err.code == "NoSuchBucket":
            return StorageError(
                f"cannot {what}: bucket {err.bucket_name!r} does not exist "
                "(check the s3:// URL, or create the bucket)"
            )
        if err.code in _DENIED:
            denied = OutputNotWritableError if writing else StorageError
            return denied(f"{message} ({_DENIED_HINT})")
        if err.code in _TRANSIENT or status >= 500:
            return TransientError(message)
        return StorageError(message)
    if isinstance(err, ServerError):
        if err.status_code >= 500:
            return TransientError(f"cannot {what}: server error {err.status_code}: {err}")
        return StorageError(f"cannot {what}: {err}")
    if isinstance(err, InvalidResponseError):
        return StorageError(f"cannot {what}: {err} (is s3_endpoint an S3/MinIO server?)")
    if isinstance(err, urllib3.exceptions.HTTPError):
        return TransientError(f"cannot {what}: connection to the S3 endpoint failed: {err}")
    return err


_SDK_ERRORS = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError)


@contextmanager
def _mapped(what: str, *, writing: bool = False) -> Iterator[None]:
    try:
        yield
    except _SDK_ERRORS as err:
        raise map_s3_error(err, what, writing=writing) from err


class _CountingReader:
    """Pass reads through to ``stream`` and count the bytes (the SDK only calls ``read``)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.bytes_read += len(chunk)
        return chunk


class S3Store:
    """Objects in ``bucket`` under ``prefix``; ``url`` is ``s3://bucket/prefix``.

    Parameters
    ----------
    bucket : str
        Bucket name (must exist; see :meth:`ensure_bucket`).
    prefix : str
        Key prefix that acts as the store's root (``""`` for the whole bucket).
    client : minio.Minio
        A configured client (endpoint, credentials, region).
    part_size : int
        Multipart part size for :meth:`write_stream` (bytes, ≥ 5 MiB).
    """

    def __init__(
        self, bucket: str, prefix: str, client: Minio, *, part_size: int = PART_SIZE_BYTES
    ) -> None:
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = validate_key(prefix) if prefix else ""
        self.client = client
        self.part_size = part_size
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str) -> str:
        return f"{self.url}/{key}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        with _mapped(f"create bucket {self.bucket!r}", writing=True):
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as err:
                if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            logger.info("created bucket %s", self.bucket)

    # -- reading -----------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, in key order."""
        validate_prefix(prefix)
        root = f"{self.prefix}/" if self.prefix else ""
        with _mapped(f"list {self._url(prefix)}"):
            for obj in self.client.list_objects(self.bucket, prefix=root + prefix, recursive=True):
                name = obj.object_name or ""
                key = name[len(root) :]
                if name.endswith("/"):  # a "folder" marker made by some S3 browsers
                    continue
                try:
                    validate_key(key)
                except StorageError:
                    logger.warning("skipping object %r in %s: unsafe key", name, self.url)
                    continue
                mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
                yield ObjectInfo(key=key, size=obj.size or 0, mtime=mtime, etag=obj.etag)

    def stat(self, key: str) -> ObjectInfo:
        """Size, mtime and ETag of ``key``."""
        name = self._name(key)
        with _mapped(f"stat {self._url(key)}"):
            obj = self.client.stat_object(self.bucket, name)
        mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
        return ObjectInfo(key=key, size=obj.size or 0, mtime=mtime, etag=obj.etag)

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def read_bytes(self, key: str) -> bytes:
        """The whole object."""
        name = self._name(key)
        with _mapped(f"read {self._url(key)}"):
            response = self.client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of ``key`` from byte ``offset`` (fewer at its end): one ranged GET."""
        name = self._name(key)
        with _mapped(f"read bytes {offset}-{offset + length - 1} of {self._url(key)}"):
            response = self.client.get_object(self.bucket, name, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def download(self, key: str, path: Path) -> None:
        """Stream ``key`` into ``path`` (a temporary file beside it, then a rename)."""
        name = self._name(key)
        what = f"download {self._url(key)} to {path}"
        with _mapped(what):
            response = self.client.get_object(self.bucket, name)

        def fill(out: BinaryIO) -> None:
            with _mapped(what):
                for chunk in response.stream(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)

        try:
            atomic_write(Path(path), fill, fsync=False)
        except OSError as err:
            raise OutputNotWritableError(
                f"cannot write {path}: {err.strerror or err} (check the folder is writable)"
            ) from err
        finally:
            response.close()
            response.release_conn()

    def local_path(self, key: str) -> Path | None:
        """None: objects in a bucket have no filesystem path."""
        validate_key(key)
        return None

    # -- writing -----------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace ``key`` with one PUT (atomic in S3)."""
        name = self._name(key)
        with _mapped(f"write {self._url(key)}", writing=True):
            self.client.put_object(
                self.bucket,
                name,
                io.BytesIO(data),
                len(data),
                content_type=content_type or "application/octet-stream",
            )

    def write_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> int:
        """Upload ``stream`` in parts of :attr:`part_size`; the object appears when complete."""
        name = self._name(key)
        counted = _CountingReader(stream)
        with _mapped(f"write {self._url(key)}", writing=True):
            self.client.put_object(
                self.bucket,
                name,
                cast(BinaryIO, counted),
                -1,
                content_type=content_type or "application/octet-stream",
                part_size=self.part_size,
            )
        return counted.bytes_read

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent; True if this call created it.

        Sends a conditional PUT (``If-None-Match: *``), which AWS S3 and MinIO honour
        atomically: of two racing writers exactly one gets True. The ``minio`` SDK has no public
        way to send that header, so this calls its ``_put_object``. A server that ignores the
        header leaves only the ``stat`` done first, which is best-effort: two writers racing
        within one round trip could both get True there.
        """
        name = self._name(key)
        what = f"create {self._url(key)}"
        if self.exists(key):
            return False
        headers = {"If-None-Match": "*", "Content-Type": "application/octet-stream"}
        for attempt in range(CONDITIONAL_PUT_ATTEMPTS):
            try:
                self._conditional_put(name, data, headers)
                return True
            except S3Error as err:
                if err.code == "PreconditionFailed":
                    return False
                retry = err.code == "ConditionalRequestConflict"
                if not retry or attempt == CONDITIONAL_PUT_ATTEMPTS - 1:
                    raise map_s3_error(err, what, writing=True) from err
            except _SDK_ERRORS as err:
                raise map_s3_error(err, what, writing=True) from err
            time.sleep(CONDITIONAL_PUT_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")

    def _conditional_put(self, name: str, data: bytes, headers: dict[str, str]) -> None:
        put = getattr(self.client, "_put_object", None)
        if put is None:  # an SDK without it: plain PUT after the stat (best-effort)
            self.client.put_object(self.bucket, name, io.BytesIO(data), len(data))
            return
        put(self.bucket, name, data, headers)

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        name = self._name(key)
        with _mapped(f"delete {self._url(key)}", writing=True):
            self.client.remove_object(self.bucket, name)
