"""Read Zeiss ``.czi``, Nikon ``.nd2`` and Leica ``.lif`` files as a ``ZCYX`` :class:`ImageStack`.

The readers are optional (``pip install 'overnight[formats]'``):

- ``.czi``: `aicspylibczi <https://github.com/AllenCellModeling/aicspylibczi>`_ (Allen
  Institute, wraps Zeiss's libCZI; reads one plane or one mosaic plane at a time, so only the
  chosen scene and timepoint are decoded; see :mod:`overnight.imaging.zeiss`). GPL-3.0: a
  build that bundles it is GPL-3.0. Its scenes may differ in size; each is read with its own.
- ``.nd2``: `nd2 <https://github.com/tlambert03/nd2>`_ (BSD-3, pure Python + numpy, reads
  modern and legacy ND2 through a lazy array, so only the chosen frames are decoded).
- ``.lif``: `liffile <https://github.com/cgohlke/liffile>`_ (BSD-3; see
  :mod:`overnight.imaging.leica`, which says why not the GPL-3.0 ``readlif``). A LIF file's
  images are its scenes; they may differ in size, and each is checked on its own.

Both are what the bioio plug-ins (``bioio-czi``, ``bioio-nd2``) use underneath; using them
directly avoids bioio's xarray/dask layers, which the pipeline does not need.

The same checks as for TIFFs hold, before any pixel is decoded: pixel type, the declared size
of the whole file against ``ReadLimits.max_pixels`` / ``max_bytes``, and the size of the part
that is decoded (one scene, one timepoint) against ``ReadLimits.max_in_memory_bytes``.

Scenes (CZI ``S``, ND2 positions ``P``) and timepoints (``T``) are read one at a time:
``scene=`` and ``timepoint=`` choose one; a file with more than one and no choice raises
:class:`InvalidImageError` that says how many there are. :func:`read_vendor_info` tells how
many a file holds without decoding pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.calibration import Calibration
from overnight.imaging.files import ImagePart, file_parts
from overnight.imaging.limits import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_declared_size,
    check_pixel_type,
)
from overnight.imaging.timepoints import TimepointTime

#: File extensions read by this module (any case), with the package each needs.
VENDOR_EXTENSIONS: dict[str, str] = {".czi": "aicspylibczi", ".nd2": "nd2", ".lif": "liffile"}


def is_vendor_name(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`VENDOR_EXTENSIONS` (any case)."""
    return Path(name).suffix.lower() in VENDOR_EXTENSIONS


@dataclass(frozen=True)
class VendorInfo:
    """What a vendor file's header declares, without decoding pixels.

    ``shape_zcyx`` is one scene at one timepoint; ``acquired_at`` is ISO 8601 (UTC when the
    file says so), ``None`` when absent.
    """

    source: str
    file_format: str
    n_scenes: int
    n_timepoints: int
    shape_zcyx: tuple[int, int, int, int]
    dtype: np.dtype
    calibration: Calibration
    acquired_at: str | None


@dataclass(frozen=True)
class _Opened:
    info: VendorInfo
    read: Callable[[int, int], np.ndarray]  # (scene, timepoint) -> ZCYX
    time_of: Callable[[int, int], datetime | None]  # (scene, timepoint) -> first plane's time


def _import(module: str, source: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise InvalidImageError(
            source,
            f"reading {Path(source).suffix} files needs the optional package {module!r}, "
            "which is not installed: pip install 'overnight[formats]'",
        ) from err


def _check_file(path: Path) -> None:
    source = str(path)
    if not path.is_file():
        raise InvalidImageError(source, "file not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise InvalidImageError(source, "file is empty (0 bytes)")


def _choose(source: str, what: str, axis: str, wanted: int | None, count: int) -> int:
    if wanted is None:
        if count == 1:
            return 0
        raise InvalidImageError(
            source,
            f"has {count} {what}s ({axis} axis); choose one: read_stack(path, "
            f"{what}=0..{count - 1}) (overnight's runners list each {what} as its own image, "
            f"with an id ending in ~{what[0]}<n>)",
        )
    if not 0 <= wanted < count:
        raise InvalidImageError(source, f"{what} {wanted} is out of range 0..{count - 1}")
    return wanted


# --- ND2 -----------------------------------------------------------------------------------


def _nd2_acquired_at(nd2_file: Any) -> str | None:
    try:  # the first frame's absolute time, a Julian day number (modern ND2 files)
        jdn = nd2_file.frame_metadata(0).channels[0].time.absoluteJulianDayNumber
        unix_s = (float(jdn) - 2440587.5) * 86400.0
        return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")
    except Exception:  # noqa: BLE001 - legacy files have no frame metadata; fall back to text
        text = (nd2_file.text_info or {}).get("date")
        return str(text).strip() if text else None


def _nd2_frame_time(nd2_file: Any, scene: int, timepoint: int) -> datetime | None:
    """The absolute time of the first frame of ``scene`` at ``timepoint`` (modern ND2)."""
    try:
        seq = next(
            i
            for i, loop in enumerate(nd2_file.loop_indices)
            if loop.get("T", 0) == timepoint and loop.get("P", 0) == scene
        )
        jdn = nd2_file.frame_metadata(seq).channels[0].time.absoluteJulianDayNumber
        return datetime.fromtimestamp((float(jdn) - 2440587.5) * 86400.0, UTC)
    except Exception:  # noqa: BLE001 - legacy files have no frame metadata
        return None


def _nd2_channel_names(nd2_file: Any) -> tuple[str, ...] | None:
    try:
        names = tuple(ch.channel.name for ch in nd2_file.metadata.channels)
    except (AttributeError, TypeError):
        return None
    return names if names and all(names) else None


def _open_nd2(path: Path) -> tuple[_Opened, Any]:
    source = str(path)
    nd2 = _import("nd2", source)
    try:
        nd2_file = nd2.ND2File(path)
    except Exception as err:  # nd2 raises ValueError, OSError or its own errors
        raise InvalidImageError(source, f"is not a readable ND2 file ({err})") from err
    try:
        sizes = dict(nd2_file.sizes)
        dtype = np.dtype(nd2_file.dtype)
        voxel = nd2_file.voxel_size()
        calibration = Calibration(
            pixel_size_um=float(voxel.x) if voxel.x > 0 else None,
            z_step_um=float(voxel.z) if sizes.get("Z", 1) > 1 and voxel.z > 0 else None,
            channel_names=_nd2_channel_names(nd2_file),
        )
        acquired_at = _nd2_acquired_at(nd2_file)
    except Exception as err:
        nd2_file.close()
        raise InvalidImageError(source, f"ND2 metadata cannot be read ({err})") from err
    unknown = [a for a, n in sizes.items() if a not in "PTZCYX" and n > 1]
    if unknown:
        nd2_file.close()
        raise InvalidImageError(
            source,
            f"ND2 axes {''.join(unknown)} ({sizes}) are not supported; "
            "only positions (P), timepoints (T), Z, C, Y and X are read (RGB files are not)",
        )
    info = VendorInfo(
        source=source,
        file_format="nd2",
        n_scenes=sizes.get("P", 1),
        n_timepoints=sizes.get("T", 1),
        shape_zcyx=(sizes.get("Z", 1), sizes.get("C", 1), sizes["Y"], sizes["X"]),
        dtype=dtype,
        calibration=calibration,
        acquired_at=acquired_at,
    )
    axes = "".join(sizes)

    def read(scene: int, timepoint: int) -> np.ndarray:
        lazy = nd2_file.to_dask()
        index = tuple(scene if a == "P" else timepoint if a == "T" else slice(None) for a in axes)
        kept = "".join(a for a in axes if a not in "PT")
        try:
            data = np.asarray(lazy[index])
        except Exception as err:
            raise InvalidImageError(source, f"ND2 pixel data cannot be decoded ({err})") from err
        for axis in "ZC":
            if axis not in kept:
                data, kept = data[np.newaxis], axis + kept
        return np.ascontiguousarray(data.transpose([kept.index(a) for a in "ZCYX"]))

    def time_of(scene: int, timepoint: int) -> datetime | None:
        return _nd2_frame_time(nd2_file, scene, timepoint)

    return _Opened(info, read, time_of), nd2_file


# --- LIF -----------------------------------------------------------------------------------


def _open_lif(path: Path, scene: int | None) -> tuple[_Opened, Callable[[], None]]:
    from overnight.imaging.leica import open_lif

    facts, read_timepoint, close, time_of = open_lif(path, scene)
    info = VendorInfo(source=str(path), file_format="lif", **facts)
    opened = _Opened(
        info,
        lambda _scene, timepoint: read_timepoint(timepoint),
        lambda _scene, timepoint: time_of(timepoint),
    )
    return opened, close


def _open_czi(path: Path, scene: int | None) -> _Opened:
    from overnight.imaging.zeiss import open_czi

    facts, read_timepoint, time_of = open_czi(path, scene)
    info = VendorInfo(source=str(path), file_format="czi", **facts)
    return _Opened(
        info,
        lambda _scene, timepoint: read_timepoint(timepoint),
        lambda _scene, timepoint: time_of(timepoint),
    )


# --- common --------------------------------------------------------------------------------


def _check_info(info: VendorInfo, limits: ReadLimits) -> None:
    z, c, y, x = info.shape_zcyx
    check_pixel_type(info.source, info.dtype)
    if 0 in info.shape_zcyx or info.n_scenes < 1 or info.n_timepoints < 1:
        raise InvalidImageError(info.source, f"declares an empty image (ZCYX {info.shape_zcyx})")
    whole = (info.n_scenes, info.n_timepoints, z, c, y, x)
    check_declared_size(info.source, whole, info.dtype, limits, in_memory=False)


def read_vendor_info(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> VendorInfo:
    """Check a vendor file's header and say what its first scene holds, decoding no pixels.

    Raises
    ------
    InvalidImageError
        As in :func:`read_vendor`.
    """
    _check_file(path)
    if path.suffix.lower() == ".nd2":
        opened, nd2_file = _open_nd2(path)
        nd2_file.close()
    elif path.suffix.lower() == ".lif":
        opened, close = _open_lif(path, None)
        close()
    else:
        opened = _open_czi(path, None)
    _check_info(opened.info, limits)
    return opened.info


def vendor_parts(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> list[ImagePart]:
    """One :class:`ImagePart` per scene and timepoint of a vendor file (header only).

    LIF and CZI scenes are looked at one by one (each has its own timepoints and size).

    Raises
    ------
    InvalidImageError
        As in :func:`read_vendor_info`.
    """
    info = read_vendor_info(path, limits=limits)
    if info.file_format == "nd2" or info.n_scenes == 1:
        return file_parts(info.n_scenes, info.n_timepoints)
    parts: list[ImagePart] = []
    for scene in range(info.n_scenes):
        if info.file_format == "lif":
            opened, close = _open_lif(path, scene)
            close()
        else:
            opened = _open_czi(path, scene)
        _check_info(opened.info, limits)
        n_t = opened.info.n_timepoints
        for part in file_parts(1, n_t):
            parts.append(ImagePart(scene, part.timepoint, info.n_scenes, n_t))
    return parts


def read_vendor(
    path: Path,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    scene: int | None = None,
    timepoint: int | None = None,
) -> tuple[np.ndarray, VendorInfo, dict[str, Any]]:
    """Decode one scene at one timepoint of a ``.czi``, ``.nd2`` or ``.lif`` file as ``ZCYX``.

    Parameters
    ----------
    path : Path
        The file.
    limits : ReadLimits
        The whole file is checked against ``max_pixels`` / ``max_bytes``, the decoded part
        against ``max_in_memory_bytes``, before any pixel is decoded.
    scene, timepoint : int, optional
        Which scene (CZI ``S``, ND2 position ``P``) and timepoint to read; needed when the file
        holds more than one.

    Returns
    -------
    data : ndarray of shape (Z, C, Y, X)
        In the file's unsigned integer type, in memory.
    info : VendorInfo
        What the header declares.
    metadata : dict
        ``file_format``, ``scene``, ``timepoint``, ``n_scenes``, ``n_timepoints`` and, when
        the file states them, ``acquired_at`` (of the timepoint in a file with several: its
        first plane's time; else the file's) and ``elapsed_s`` (s after the scene's first
        timepoint), for ``ImageStack.metadata``.

    Raises
    ------
    InvalidImageError
        Missing, empty or damaged file; reader package not installed; unsupported pixel type or
        axes; declared size beyond ``limits``; ``scene`` / ``timepoint`` missing or out of range.
    """
    _check_file(path)
    source = str(path)
    nd2_file = None
    close: Callable[[], None] | None = None
    if path.suffix.lower() == ".nd2":
        opened, nd2_file = _open_nd2(path)
    elif path.suffix.lower() == ".lif":
        opened, close = _open_lif(path, scene)
    elif path.suffix.lower() == ".czi":
        opened = _open_czi(path, scene)
    else:
        raise InvalidImageError(source, f"is not a vendor file ({', '.join(VENDOR_EXTENSIONS)})")
    try:
        info = opened.info
        _check_info(info, limits)
        chosen_scene = _choose(source, "scene", "S/P", scene, info.n_scenes)
        chosen_t = _choose(source, "timepoint", "T", timepoint, info.n_timepoints)
        check_declared_size(source, info.shape_zcyx, info.dtype, limits, in_memory=True)
        try:
            data = opened.read(chosen_scene, chosen_t)
        except InvalidImageError:
            raise
        except Exception as err:  # libCZI / nd2 decode errors have their own types
            raise InvalidImageError(source, f"pixel data cannot be decoded ({err})") from err
        when = _timepoint_time(opened, chosen_scene, chosen_t)
    finally:
        if nd2_file is not None:
            nd2_file.close()
        if close is not None:
            close()
    if data.shape != info.shape_zcyx or math.prod(data.shape) == 0:
        raise InvalidImageError(
            source, f"decoded shape {data.shape} differs from the declared ZCYX {info.shape_zcyx}"
        )
    metadata: dict[str, Any] = {
        "file_format": info.file_format,
        "scene": chosen_scene,
        "n_scenes": info.n_scenes,
        "timepoint": chosen_t,
        "n_timepoints": info.n_timepoints,
    }
    if info.acquired_at:
        metadata["acquired_at"] = info.acquired_at
    if when.acquired_at is not None:  # a timepoint's own time replaces the file's
        metadata["acquired_at"] = when.acquired_at
    if when.elapsed_s is not None:
        metadata["elapsed_s"] = round(when.elapsed_s, 6)
    return data, info, metadata


def _timepoint_time(opened: _Opened, scene: int, timepoint: int) -> TimepointTime:
    """When a timepoint of a file with several was taken, and seconds after the first."""
    if opened.info.n_timepoints < 2:
        return TimepointTime()
    this, first = opened.time_of(scene, timepoint), opened.time_of(scene, 0)
    if this is None:
        return TimepointTime()
    elapsed_s = None
    if first is not None and (this.tzinfo is None) == (first.tzinfo is None):
        elapsed_s = (this - first).total_seconds()
    return TimepointTime(this.isoformat(), elapsed_s)
