"""A read-only zarr ``Store`` over one of overnight's object stores (S3, a folder).

Each zarr key is one object under a prefix, read whole with ``ObjectStore.read_bytes`` when
zarr asks for it, so opening an OME-Zarr in a bucket reads only its metadata, and each chunk
crosses the network only when an index touches it (:mod:`overnight.imaging.zarr_store`).
zarr is imported on first use (the optional ``formats`` extra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from typing import TYPE_CHECKING, Any

from overnight.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from overnight.storage import ObjectStore


def object_store_zarr(store: ObjectStore, prefix: str) -> Any:
    """A read-only zarr ``Store`` of the keys under ``prefix`` of ``store``."""
    return _store_class()(store, prefix)


def _ranged(data: bytes, byte_range: Any) -> bytes:
    """The part of ``data`` a zarr ``ByteRequest`` asks for (None: all of it)."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :]
    raise TypeError(f"unknown byte range {byte_range!r}")


@cache
def _store_class() -> type:
    """A read-only zarr ``Store`` over an overnight ``ObjectStore`` (zarr imported on first use)."""
    from zarr.abc.store import Store

    class ObjectStoreZarr(Store):
        """Keys of a zarr hierarchy under ``prefix``, read with ``ObjectStore.read_bytes``."""

        def __init__(self, store: ObjectStore, prefix: str) -> None:
            super().__init__(read_only=True)
            self.store, self.prefix = store, prefix.strip("/")

        def _key(self, key: str) -> str:
            return f"{self.prefix}/{key}" if self.prefix else key

        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, ObjectStoreZarr)
                and other.store is self.store
                and other.prefix == self.prefix
            )

        __hash__ = None  # type: ignore[assignment]

        @property
        def supports_writes(self) -> bool:
            return False

        @property
        def supports_deletes(self) -> bool:
            return False

        @property
        def supports_listing(self) -> bool:
            return True

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            try:
                data = self.store.read_bytes(self._key(key))
            except ObjectNotFoundError:
                return None
            return prototype.buffer.from_bytes(_ranged(data, byte_range))

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
            return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

        async def exists(self, key: str) -> bool:
            return bool(self.store.exists(self._key(key)))

        async def set(self, key: str, value: Any) -> None:
            raise PermissionError(f"{self.store!r}/{self.prefix} is opened read-only")

        async def delete(self, key: str) -> None:
            raise PermissionError(f"{self.store!r}/{self.prefix} is opened read-only")

        async def list(self) -> AsyncIterator[str]:
            async for key in self.list_prefix(""):
                yield key

        async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
            base = f"{self.prefix}/" if self.prefix else ""
            for info in self.store.list(base + prefix):
                yield info.key[len(base) :]

        async def list_dir(self, prefix: str) -> AsyncIterator[str]:
            inner = f"{prefix.rstrip('/')}/" if prefix.strip("/") else ""
            seen: set[str] = set()
            async for key in self.list_prefix(inner):
                child = key[len(inner) :].split("/", 1)[0]
                if child and child not in seen:
                    seen.add(child)
                    yield child

    return ObjectStoreZarr
