"""The one storage interface every backend implements (``file://`` folders, ``s3://`` buckets).

Keys are ``/``-separated, relative to the store's root (``results/ds1/img1/cells.csv``); the
store never lets a key escape its root. Backends: :mod:`overnight.storage.local`,
:mod:`overnight.storage.s3`; pick one by URL with :func:`overnight.storage.open_store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object: key, size in bytes, mtime (epoch s), ETag."""

    key: str
    size: int
    mtime: float
    etag: str | None = None


@runtime_checkable
class ObjectStore(Protocol):
    """List, read and write objects under one root (a folder or a bucket + prefix)."""

    url: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, in key order."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size, mtime and ETag of one object; :class:`ObjectNotFoundError` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole object; :class:`ObjectNotFoundError` if absent."""
        ...

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Create or replace ``key`` atomically: readers see the old or the new bytes."""
        ...

    def write_stream(self, key: str, stream: BinaryIO, content_type: str | None = None) -> int:
        """Stream a file-like object to ``key`` atomically; returns the bytes written."""
        ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if absent; True if this call created it (a lock/commit primitive)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if absent."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to read ``key`` in place (memmap), or None for remote stores."""
        ...

    def download(self, key: str, path: Path) -> None:
        """Copy ``key`` into a local file, streaming (for large images on remote stores)."""
        ...
