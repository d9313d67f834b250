"""An object store that records the objects read through it (imported via ``sys.path``).

Shared by the OME-Zarr tests that check a reader fetches only the chunks it needs.
"""

from __future__ import annotations

from typing import Any


class CountingStore:
    """Wraps an ``ObjectStore``; ``reads`` lists the keys read with ``read_bytes``, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, []

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return self.inner.read_bytes(key)

    def __getattr__(self, name: str) -> Any:  # list, exists, local_path, ...
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return repr(self.inner)
