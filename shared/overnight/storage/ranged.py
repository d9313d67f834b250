"""Read an object by byte range, as a seekable binary stream, without copying it whole.

A TIFF's header (its first IFD and ``ImageDescription``) says how many timepoints it holds;
listing a bucket of TIFFs then costs a few small range reads per file, not a download.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from overnight.storage.base import ObjectStore

#: Bytes fetched per range read (a TIFF header and a short description fit in one).
RANGE_BYTES = 64 * 1024


class RangedObject(io.RawIOBase):
    """A seekable, read-only raw stream whose reads are ``read_range(offset, length)`` calls.

    ``requests`` counts the calls (one per range read).
    """

    def __init__(self, read_range: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._read_range = read_range
        self._size = size
        self._position = 0
        self.requests = 0

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """The position, in bytes from the start."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` from the start, the position or the end (``whence`` 0, 1, 2)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the position with one range read; 0 at the end."""
        length = min(len(buffer), self._size - self._position)
        if length <= 0:
            return 0
        data = self._read_range(self._position, length)
        self.requests += 1
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


@contextmanager
def open_ranged(store: ObjectStore, key: str, size: int) -> Iterator[BinaryIO | None]:
    """A seekable stream over ``key`` (``size`` bytes), or None if the store has no ranges.

    A folder store's file is opened in place; an S3 store's object is read by range
    (``S3Store.read_range``), :data:`RANGE_BYTES` at a time.
    """
    path = store.local_path(key)
    if path is not None:
        with path.open("rb") as file:
            yield file
        return
    read_range = getattr(store, "read_range", None)
    if read_range is None:
        yield None
        return

    def read(offset: int, length: int) -> bytes:
        return bytes(read_range(key, offset, length))

    with io.BufferedReader(RangedObject(read, size), buffer_size=RANGE_BYTES) as stream:
        yield stream
