"""The source image of a result, when this service can read it: for channel projections.

``result.json`` names its source as a local path (embedded runs), a ``file://`` URL, or a key
of the same store (images uploaded through the ingest API). Only TIFF files are opened, and
only through :func:`overnight.imaging.reader.read_stack`, which checks them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from overnight.errors import InvalidImageError, StorageError
from overnight.imaging.reader import read_stack
from overnight.storage.base import ObjectStore
from overnight.storage.keys import validate_key

logger = logging.getLogger(__name__)

_TIFF_SUFFIXES = (".tif", ".tiff")


def _is_tiff(name: str) -> bool:
    return name.lower().endswith(_TIFF_SUFFIXES)


def local_source(store: ObjectStore, source: str, scratch: Path) -> Path | None:
    """A local TIFF file holding ``source``, or None when it cannot be reached from here.

    Store keys of remote stores are downloaded into ``scratch``.
    """
    if not source or not _is_tiff(source):
        return None
    if source.startswith("file://"):
        path = Path(unquote(urlsplit(source).path))
        return path if path.is_file() else None
    if "://" in source:
        return None
    if Path(source).is_absolute():
        path = Path(source)
        return path if path.is_file() else None
    try:
        key = validate_key(source)
        if not store.exists(key):
            return None
        local = store.local_path(key)
        if local is not None:
            return local
        target = scratch / key.replace("/", "__")
        if not target.exists():
            store.download(key, target)
        return target
    except StorageError as err:
        logger.info("source %s not readable from the store: %s", source, err)
        return None


def read_source(path: Path) -> np.ndarray | None:
    """The ``ZCYX`` pixels of ``path`` (memory-mapped when possible), or None if unreadable."""
    try:
        return read_stack(path).data
    except InvalidImageError as err:
        logger.warning("cannot show channels of %s: %s", path, err.problem)
        return None


def scratch_dir() -> Path:
    """A private temporary folder for downloaded sources (removed at interpreter exit)."""
    folder = tempfile.TemporaryDirectory(prefix="overnight-qc-")
    _SCRATCH.append(folder)
    return Path(folder.name)


_SCRATCH: list[tempfile.TemporaryDirectory[str]] = []
