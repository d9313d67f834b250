"""Dataset sources: a NAS folder (``file:///abs``) under an allowed root, or ``s3://bucket/prefix``.

A ``file://`` source is refused unless it resolves (symlinks included) inside one of the
configured roots (``OVERNIGHT_NAS_ROOT``), so a request cannot make the service read
``/etc`` or another lab's share.
"""

from __future__ import annotations

import logging

from overnight.errors import ConfigError, UnsafeKeyError
from overnight.imaging.files import image_id_from_name, is_image_name
from overnight.jobs.settings import JobSettings
from overnight.storage import ObjectInfo, ObjectStore, open_store, parse_store_url, validate_id

logger = logging.getLogger(__name__)


def check_source_url(url: str, settings: JobSettings) -> str:
    """Return ``url`` normalised (no trailing ``/``) if it is a source the service may read.

    Raises
    ------
    UnsafeKeyError
        A ``file://`` URL that is relative, holds ``..``, NUL or a backslash, or resolves outside
        every allowed root.
    ConfigError
        An unknown scheme, or a ``file://`` source while no root is configured.
    """
    if any(ch in url for ch in ("\x00", "\\")) or any(ord(ch) < 0x20 for ch in url):
        raise UnsafeKeyError(f"source {url!r} holds NUL, a control character or a backslash")
    if not (url.startswith("file://") or url.startswith("s3://")):
        raise ConfigError(f"source {url!r}: use file:///absolute/path or s3://bucket/prefix")
    location = parse_store_url(url)
    if location.scheme == "s3":
        return url.rstrip("/")
    assert location.path is not None
    if not location.path.is_absolute() or ".." in location.path.parts:
        raise UnsafeKeyError(f"source {url!r} must be an absolute path without '..'")
    roots = settings.nas_roots()
    if not roots:
        raise ConfigError(
            "file:// sources need OVERNIGHT_NAS_ROOT (the folders they may lie under)"
        )
    resolved = location.path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise UnsafeKeyError(
            f"source {url!r} is outside the allowed roots ({', '.join(map(str, roots))})"
        )
    return url.rstrip("/")


def open_source(url: str | None, settings: JobSettings) -> ObjectStore:
    """The store to read a dataset's images from; ``None`` is the service's own store."""
    if url is None:
        return open_store(settings.storage_url, settings)
    return open_store(check_source_url(url, settings), settings)


def list_images(store: ObjectStore, prefix: str = "") -> list[ObjectInfo]:
    """Image objects (``.tif``, ``.ome.tif``, …) under ``prefix`` whose id is valid, by key."""
    found = []
    for info in store.list(prefix):
        name = info.key.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in info.key.split("/")) or not is_image_name(name):
            continue
        try:
            validate_id(image_id_from_name(name))
        except UnsafeKeyError:
            logger.warning("skipping %s: its name cannot be an image id", info.key)
            continue
        found.append(info)
    return found


def image_id_of(key: str) -> str:
    """The image id of a source key: its file name without the image extension."""
    return validate_id(image_id_from_name(key.rsplit("/", 1)[-1]))
