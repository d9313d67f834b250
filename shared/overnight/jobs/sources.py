"""Dataset sources: a NAS folder (``file:///abs``) under an allowed root, or ``s3://bucket/prefix``.

A ``file://`` source is refused unless it resolves (symlinks included) inside one of the
configured roots (``OVERNIGHT_NAS_ROOT``), so a request cannot make the service read
``/etc`` or another lab's share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from overnight.errors import ConfigError, InvalidImageError, NoImagesError, UnsafeKeyError
from overnight.imaging.files import (
    IMAGE_EXTENSIONS,
    IgnoredFile,
    image_id_for,
    is_image_name,
    is_zarr_folder_name,
    scan_folder,
)
from overnight.imaging.reader import part_keys, zarr_parts
from overnight.imaging.timepoints import tiff_parts
from overnight.imaging.vendor import is_vendor_name
from overnight.imaging.zarr_store import open_zarr_in_store
from overnight.jobs.settings import JobSettings
from overnight.storage import (
    LocalStore,
    ObjectInfo,
    ObjectStore,
    open_store,
    parse_store_url,
    validate_id,
    validate_key,
)
from overnight.storage.copies import local_copy
from overnight.storage.keys import MAX_SEGMENT_BYTES
from overnight.storage.ranged import open_ranged

logger = logging.getLogger(__name__)


def check_source_url(url: str, settings: JobSettings, *, must_exist: bool = False) -> str:
    """Return ``url`` normalised (no trailing ``/``) if it is a source the service may read.

    Raises
    ------
    UnsafeKeyError
        A ``file://`` URL that is relative, holds ``..``, NUL or a backslash, or resolves outside
        every allowed root.
    ConfigError
        An unknown scheme, or a ``file://`` source while no root is configured.
    NoImagesError
        With ``must_exist``, a ``file://`` source that is not an existing folder.
    """
    if any(ch in url for ch in ("\x00", "\\")) or any(ord(ch) < 0x20 for ch in url):
        raise UnsafeKeyError(f"source {url!r} holds NUL, a control character or a backslash")
    if not (url.startswith("file://") or url.startswith("s3://")):
        raise ConfigError(f"source {url!r}: use file:///absolute/path or s3://bucket/prefix")
    location = parse_store_url(url)
    if location.scheme == "s3":
        prefix = (location.prefix or "").strip("/")
        if prefix:
            validate_key(prefix)  # no '..', '.', empty or encoded-dot segments
        return url.rstrip("/")
    assert location.path is not None
    too_long = [p for p in location.path.parts if len(p.encode("utf-8")) > MAX_SEGMENT_BYTES]
    if too_long:
        raise UnsafeKeyError(
            f"source {url[:120]!r}: a folder name is longer than {MAX_SEGMENT_BYTES} bytes"
        )
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
    if must_exist and not resolved.is_dir():
        raise NoImagesError(f"source {url!r} is not a folder; give the folder of the images")
    return url.rstrip("/")


def open_source(url: str | None, settings: JobSettings) -> ObjectStore:
    """The store to read a dataset's images from; ``None`` is the service's own store."""
    if url is None:
        return open_store(settings.storage_url, settings)
    return open_store(check_source_url(url, settings), settings)


@dataclass(frozen=True)
class SourceListing:
    """A source's images (by key) and the image-named entries it holds that cannot be analysed."""

    images: list[ObjectInfo] = field(default_factory=list)
    ignored: list[IgnoredFile] = field(default_factory=list)


#: Part keys of vendor files and TIFFs already looked at, by (store, key, size, mtime, ETag): a
#: watcher lists its sources every few seconds and a file's header is read only once.
_PART_KEYS: dict[tuple[str, str, int, float, str | None], list[str]] = {}
_PART_KEYS_MAX = 65536


def _image_entries(store: ObjectStore, info: ObjectInfo) -> list[ObjectInfo]:
    """``info`` itself, or one entry per part (``a.czi#s01t002``, ``f.zarr#t001``, ``a.tif#t001``).

    A remote vendor file is downloaded once to read its header (the vendor readers need a
    local file); a remote TIFF's header is read by range; an OME-Zarr folder's metadata
    objects are read, never a chunk. The answer is kept while the object is unchanged.
    """
    name = info.key.rsplit("/", 1)[-1]
    zarr_folder = is_zarr_folder_name(name)
    tiff = name.lower().endswith(IMAGE_EXTENSIONS)
    if not (zarr_folder or tiff or is_vendor_name(info.key)):
        return [info]
    mark = (repr(store), info.key, info.size, info.mtime, info.etag)
    keys = _PART_KEYS.get(mark)
    if keys is None:
        if zarr_folder:
            keys = _zarr_part_keys(store, info.key)
        elif tiff:
            keys = _tiff_part_keys(store, info)
        else:
            keys = _vendor_part_keys(store, info)
        if len(_PART_KEYS) >= _PART_KEYS_MAX:
            _PART_KEYS.clear()
        _PART_KEYS[mark] = keys
    return [replace(info, key=key) for key in keys]


def _zarr_part_keys(store: ObjectStore, key: str) -> list[str]:
    try:
        image = open_zarr_in_store(store, key)
    except InvalidImageError:
        return [key]  # analysing it fails, with the reason
    return [key + part.key_suffix() for part in zarr_parts(image)]


def _tiff_part_keys(store: ObjectStore, info: ObjectInfo) -> list[str]:
    """A TIFF's key per timepoint, from its header (read in place or by range)."""
    with open_ranged(store, info.key, info.size) as stream:
        if stream is not None:
            return [info.key + part.key_suffix() for part in tiff_parts(stream)]
    return _vendor_part_keys(store, info)  # a store without range reads: a local copy


def _vendor_part_keys(store: ObjectStore, info: ObjectInfo) -> list[str]:
    with local_copy(store, info.key) as (path, _):
        return part_keys(info.key, path)


def _zarr_folder_of(key: str) -> str | None:
    """The OME-Zarr folder key ``key`` lies in (``a/f.ome.zarr/0/c/0`` → ``a/f.ome.zarr``)."""
    parts = key.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.startswith("."):
            return None
        if is_zarr_folder_name(part):
            return "/".join(parts[: index + 1])
    return None


def _with_zarr_folders(infos: list[ObjectInfo]) -> list[ObjectInfo]:
    """``infos`` with the objects of each OME-Zarr folder as one entry, keyed by the folder.

    Its size is the objects' total and its mtime the newest, so a store still being
    copied looks unsettled to the watcher.
    """
    out: list[ObjectInfo] = []
    folders: dict[str, int] = {}
    for info in infos:
        folder = _zarr_folder_of(info.key)
        if folder is None:
            out.append(info)
        elif folder not in folders:
            folders[folder] = len(out)
            out.append(ObjectInfo(folder, info.size, info.mtime))
        else:
            seen = out[folders[folder]]
            out[folders[folder]] = ObjectInfo(
                folder, seen.size + info.size, max(seen.mtime, info.mtime)
            )
    return out


def list_source(store: ObjectStore, prefix: str = "") -> SourceListing:
    """Every image under ``prefix`` and every image-named entry ignored, each with its reason.

    Ignored: two keys with one image id (``a.tif`` and ``a.ome.tif``; the first by key is
    analysed) and, in a NAS folder, folders named like images, dangling symlinks and
    symlinks out of the folder (the service reads only inside its allowed roots). A vendor
    file or TIFF with several scenes or timepoints is listed once per part, under a part key
    (``plate.czi#s01t003``, see :func:`overnight.imaging.files.split_part_key`); an OME-Zarr
    folder (``f.ome.zarr/…``) is one image, keyed by the folder.
    """
    images: list[ObjectInfo] = []
    ignored: list[IgnoredFile] = []
    owners: dict[str, str] = {}
    for info in _with_zarr_folders(list(store.list(prefix))):
        name = info.key.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in info.key.split("/")):
            continue
        if not (is_image_name(name) or is_zarr_folder_name(name)):
            continue
        image_id = image_id_for(info.key)
        if image_id in owners:
            ignored.append(
                IgnoredFile(
                    info.key,
                    f"{info.key} has the same image id {image_id!r} as "
                    f"{owners[image_id]}; rename one",
                    clash=True,
                )
            )
            continue
        owners[image_id] = info.key
        images += _image_entries(store, info)
    if isinstance(store, LocalStore) and store.root.is_dir():
        listed = {info.key for info in images} | {f.relative for f in ignored}
        for item in scan_folder(store.root, follow_outside=False).ignored:
            if item.relative.startswith(prefix) and item.relative not in listed:
                ignored.append(item)
    return SourceListing(images, sorted(ignored, key=lambda f: f.relative))


def list_images(store: ObjectStore, prefix: str = "") -> list[ObjectInfo]:
    """Image objects (``.tif``, ``.ome.tif``, …) under ``prefix``, one per image id, by key."""
    return list_source(store, prefix).images


def image_id_of(key: str, base: str = "") -> str:
    """The image id of a source key (``base`` stripped first): its path, encoded.

    See :func:`overnight.imaging.files.image_id_for`.
    """
    return validate_id(image_id_for(key.removeprefix(base)))
