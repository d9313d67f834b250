"""A local file for an object: the file itself on a folder store, else a temporary copy."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from overnight.storage.base import ObjectStore
from overnight.storage.keys import validate_key
from overnight.storage.local import LocalStore


@contextmanager
def local_copy(store: ObjectStore, key: str) -> Iterator[tuple[Path, Path]]:
    """``(file, folder)``: a local file holding ``key`` and the local folder of the store's root.

    On a folder store the file is read in place (``folder`` is the store's root). Otherwise
    the object is copied to ``<temporary folder>/<key>`` (its sub-folders and file name kept:
    metadata is read from them), deleted on exit.
    """
    path = store.local_path(key)
    if path is not None:
        root = getattr(store, "root", None)
        yield path, Path(root).resolve() if root is not None else path.parent
        return
    folder = Path(tempfile.mkdtemp(prefix="overnight-"))
    try:
        target = folder / validate_key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, target)
        yield target, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def local_folder(store: ObjectStore) -> Iterator[Path]:
    """A local folder holding every object of ``store``.

    The store's root on a folder store, else a temporary copy (sub-folders kept), deleted on
    exit.
    """
    if isinstance(store, LocalStore):
        yield store.root.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="overnight-"))
    try:
        for info in store.list():
            target = folder / validate_key(info.key)
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download(info.key, target)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
