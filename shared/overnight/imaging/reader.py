"""Read one field of view as a ``ZCYX`` :class:`ImageStack`, refusing bad files.

TIFF / OME-TIFF are read here; ``.czi`` / ``.nd2`` by :mod:`overnight.imaging.vendor` and
OME-Zarr folders (``.zarr``, ``.ome.zarr``) by :mod:`overnight.imaging.zarr_store`, chosen by the
name's extension, with the same checks and the same :class:`ImageStack`.

Every problem with a file (empty, not a TIFF, truncated, unsupported pixel type, too few
channels, a header that declares an absurd size) raises :class:`InvalidImageError` naming the
file; no tifffile traceback reaches the user.

How pixels are read (tifffile 2026.x, no zarr needed):

- the header is checked first: declared shape against :class:`ReadLimits`, every strip/tile
  inside the file, compressed chunks small enough to decode;
- uncompressed, contiguous data in native byte order (what tifffile, ImageJ and most
  acquisition software write) is memory-mapped read-only with ``numpy.memmap`` at
  ``series.dataoffset``: ``ImageStack.data`` is then a lazy ``ZCYX`` view and a file larger than
  RAM can be processed tile by tile by slicing it;
- anything else (compressed, tiled, scattered strips) is decoded into memory with
  ``series.asarray()``, within ``ReadLimits.max_in_memory_bytes``;
- :func:`read_tile` reads a Y/X window of any file; for files that cannot be memory-mapped it
  decodes one page (one YX plane) at a time, so only the window is kept.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx
from overnight.imaging.files import image_id_from_name
from overnight.imaging.header import (
    TIFF_ERRORS,
    ImageInfo,
    inspect_tiff,
    open_tiff,
    series_keyframe,
)
from overnight.imaging.limits import DEFAULT_LIMITS, ReadLimits, check_declared_size
from overnight.imaging.parts import image_parts as image_parts
from overnight.imaging.parts import part_keys as part_keys
from overnight.imaging.parts import zarr_parts as zarr_parts
from overnight.imaging.stack import ImageStack
from overnight.imaging.timepoints import decode_timepoint, timepoint_metadata
from overnight.imaging.vendor import (
    VENDOR_EXTENSIONS,
    is_vendor_name,
    read_vendor,
)
from overnight.imaging.zarr_store import (
    ZARR_EXTENSIONS,
    ZarrImage,
    is_zarr_name,
    open_zarr_in_store,
    read_zarr,
    read_zarr_tile,
)

if TYPE_CHECKING:
    from overnight.storage import ObjectStore

logger = logging.getLogger(__name__)


def _check_channels(
    info: ImageInfo, channels_required: int, channel_roles: tuple[str, ...]
) -> None:
    n_channels = info.shape_zcyx[1]
    if n_channels < channels_required:
        plural = "channel" if n_channels == 1 else "channels"
        names = f" ({', '.join(channel_roles)})" if channel_roles else ""
        raise InvalidImageError(
            info.source,
            f"has {n_channels} {plural}; the pipeline needs {channels_required}{names} "
            f"— check the channel settings (file axes {info.file_axes!r}, shape {info.file_shape})",
        )


def _check_stack_channels(
    stack: ImageStack, channels_required: int, channel_roles: tuple[str, ...]
) -> None:
    n_channels = stack.shape_zcyx[1]
    if n_channels < channels_required:
        plural = "channel" if n_channels == 1 else "channels"
        names = f" ({', '.join(channel_roles)})" if channel_roles else ""
        raise InvalidImageError(
            stack.source,
            f"has {n_channels} {plural}; the pipeline needs {channels_required}{names} "
            f"— check the channel settings (ZCYX shape {stack.shape_zcyx})",
        )


def _memmap(path: Path, series: tifffile.TiffPageSeries) -> np.ndarray:
    """Map the series read-only; only for series whose ``ImageInfo.memmappable`` is True."""
    offset = int(series.dataoffset or 0)
    return np.memmap(
        path, dtype=np.dtype(series.dtype), mode="r", offset=offset, shape=series.shape
    )


def _decode(source: str, series: tifffile.TiffPageSeries) -> np.ndarray:
    try:
        data = series.asarray()
    except TIFF_ERRORS as err:
        raise InvalidImageError(source, f"pixel data cannot be decoded ({err})") from err
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def _stem(name: str, extensions: tuple[str, ...]) -> str:
    lower = name.lower().rstrip("/")
    for extension in sorted(extensions, key=len, reverse=True):
        if lower.endswith(extension):
            return name.rstrip("/")[: -len(extension)]
    return name


def _read_other_format(
    path: Path,
    *,
    image_id: str | None,
    limits: ReadLimits,
    scene: int | None,
    timepoint: int | None,
) -> ImageStack:
    """Read a vendor file or an OME-Zarr folder (``path`` is one of them)."""
    source = str(path)
    if is_zarr_name(path.name):
        if scene not in (None, 0):
            raise InvalidImageError(
                source, f"an OME-Zarr image has one scene; scene {scene} does not exist"
            )
        data, image = read_zarr(path, limits=limits, timepoint=timepoint)
        return _zarr_stack(data, image, image_id or _stem(path.name, ZARR_EXTENSIONS))
    data, info, metadata = read_vendor(path, limits=limits, scene=scene, timepoint=timepoint)
    calibration = info.calibration
    default_id = _stem(path.name, tuple(VENDOR_EXTENSIONS))
    metadata["file_shape"] = list(data.shape)
    if calibration.channel_names:
        metadata["channel_names"] = list(calibration.channel_names)
    return ImageStack(
        data=data,
        image_id=image_id or default_id,
        source=source,
        pixel_size_um=calibration.pixel_size_um,
        z_step_um=calibration.z_step_um,
        channel_names=calibration.channel_names,
        metadata=metadata,
    )


def _zarr_stack(data: np.ndarray, image: ZarrImage, image_id: str) -> ImageStack:
    calibration = image.calibration
    metadata: dict[str, Any] = {
        "file_format": "ome-zarr",
        "file_axes": image.axes,
        "ngff_version": image.ngff_version,
        "file_shape": list(data.shape),
    }
    if calibration.channel_names:
        metadata["channel_names"] = list(calibration.channel_names)
    return ImageStack(
        data=data,
        image_id=image_id,
        source=image.source,
        pixel_size_um=calibration.pixel_size_um,
        z_step_um=calibration.z_step_um,
        channel_names=calibration.channel_names,
        metadata=metadata,
    )


def read_zarr_in_store(
    store: ObjectStore,
    key: str,
    *,
    image_id: str,
    limits: ReadLimits = DEFAULT_LIMITS,
    channels_required: int = 1,
    channel_roles: tuple[str, ...] = (),
    timepoint: int | None = None,
) -> ImageStack:
    """Read the OME-Zarr image at ``key`` of an object store (S3, …) as a ``ZCYX`` stack.

    Only the chunks of the timepoint read are fetched (one object each), after the declared
    size was checked against ``limits``; no local copy of the store is made.

    Raises
    ------
    InvalidImageError
        As :func:`read_stack` for an OME-Zarr folder.
    """
    image = open_zarr_in_store(store, key, limits=limits)
    data, image = read_zarr(image, limits=limits, timepoint=timepoint)
    stack = _zarr_stack(data, image, image_id)
    _check_stack_channels(stack, channels_required, channel_roles)
    return stack


def read_stack(
    path: Path,
    *,
    image_id: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    channels_required: int = 1,
    channel_roles: tuple[str, ...] = (),
    memmap: bool = True,
    axes: str | None = None,
    timepoint: int | None = None,
    scene: int | None = None,
) -> ImageStack:
    """Read a TIFF, OME-TIFF, CZI, ND2 or OME-Zarr image as a ``ZCYX`` stack with its calibration.

    Parameters
    ----------
    path : Path
        The file (``.tif``, ``.tiff``, ``.ome.tif``; ``.czi``, ``.nd2`` and OME-Zarr folders
        ``.zarr`` / ``.ome.zarr`` with the optional extra ``overnight[formats]``).
    image_id : str, optional
        Defaults to the file name without its extension.
    limits : ReadLimits
        Size budget checked against the header before reading.
    channels_required : int
        Fewest channels (C after normalisation) the caller needs.
    channel_roles : tuple of str
        What the caller uses the channels for, named in the error when too few are present,
        e.g. ``("cell", "pnp")``.
    memmap : bool
        Memory-map uncompressed contiguous files (``data`` is then a read-only lazy view);
        False decodes into memory.
    axes : str, optional
        The file's axes in tifffile letters, overriding its metadata (e.g. ``"CYX"`` for a
        two-page TIFF with no metadata, which is otherwise read as a z-stack).
    timepoint : int, optional
        Which timepoint to keep from a file with a T axis longer than 1.
    scene : int, optional
        Which scene (CZI) or position (ND2) to read from a file that holds several; TIFF and
        OME-Zarr have only scene 0.

    Returns
    -------
    ImageStack
        ``data`` of shape (Z, C, Y, X) in the file's unsigned integer type; ``pixel_size_um``,
        ``z_step_um`` and ``channel_names`` from the file when it states them; ``metadata``
        holds ``file_shape`` and, for TIFF and OME-Zarr, ``file_axes``; for the other formats
        ``file_format``, ``channel_names`` and, from vendor files, ``scene``, ``n_scenes``,
        ``timepoint``, ``n_timepoints`` and ``acquired_at`` (ISO 8601) when the file states it.

    Raises
    ------
    InvalidImageError
        File missing, empty, not a TIFF, truncated, corrupt, of an unsupported pixel type,
        larger than ``limits``, with axes that cannot be placed in ZCYX, or with fewer than
        ``channels_required`` channels; a vendor file or OME-Zarr store whose reader package
        is not installed; a file with several scenes or timepoints and none chosen.
    """
    source = str(path)
    if is_vendor_name(path.name) or is_zarr_name(path.name):
        stack = _read_other_format(
            path, image_id=image_id, limits=limits, scene=scene, timepoint=timepoint
        )
        _check_stack_channels(stack, channels_required, channel_roles)
        return stack
    if scene not in (None, 0):
        raise InvalidImageError(
            source, f"TIFFs are read as one scene; scene {scene} does not exist"
        )
    with open_tiff(path) as tif:
        series, info = inspect_tiff(tif, axes=axes, timepoint=timepoint, limits=limits)
        _check_channels(info, channels_required, channel_roles)
        read_t = timepoint
        if memmap and info.memmappable:
            raw = _memmap(path, series)
        else:
            part = decode_timepoint(series, info, timepoint, limits)
            if part is None:  # not a T-first series, or no timepoint: every page
                check_declared_size(source, info.file_shape, info.dtype, limits, in_memory=True)
                raw = _decode(source, series)
            else:
                raw, read_t = part, 0
        times = timepoint_metadata(tif, info.file_axes, info.file_shape, timepoint)
    data = to_zcyx(raw, info.file_axes, source=source, timepoint=read_t)
    logger.debug("read %s as ZCYX %s (memmap=%s)", source, data.shape, isinstance(raw, np.memmap))
    metadata: dict[str, Any] = {"file_axes": info.file_axes, "file_shape": list(info.file_shape)}
    if info.calibration.acquired_at:
        metadata["acquired_at"] = info.calibration.acquired_at
    metadata.update(times)  # a timepoint's own time replaces the file's start
    return ImageStack(
        data=data,
        image_id=image_id or image_id_from_name(path.name),
        source=source,
        pixel_size_um=info.calibration.pixel_size_um,
        z_step_um=info.calibration.z_step_um,
        channel_names=info.calibration.channel_names,
        metadata=metadata,
    )


def _crop_page(
    page: tifffile.TiffPage | tifffile.TiffFrame | None,
    keyframe: tifffile.TiffPage,
    window: tuple[slice, slice],
    source: str,
) -> np.ndarray:
    page_axes = keyframe.axes
    index = tuple(
        window[0] if a == "Y" else window[1] if a == "X" else slice(None) for a in page_axes
    )
    if page is None:  # a plane the OME metadata lists but the file lacks: tifffile reads zeros
        return np.zeros(keyframe.shape, keyframe.dtype)[index]
    try:
        return page.asarray()[index]
    except TIFF_ERRORS as err:
        raise InvalidImageError(source, f"page {page.index} cannot be decoded ({err})") from err


def _read_window_pagewise(
    series: tifffile.TiffPageSeries,
    window: tuple[slice, slice],
    axes: str,
    source: str,
    limits: ReadLimits,
) -> np.ndarray:
    keyframe = series_keyframe(series)
    n_page_dims = len(keyframe.shape)
    file_shape = tuple(series.shape)
    if file_shape[-n_page_dims:] != tuple(keyframe.shape) or math.prod(
        file_shape[:-n_page_dims]
    ) != len(series.pages):  # pages do not tile the series plane by plane: decode it whole
        check_declared_size(source, file_shape, series.dtype, limits, in_memory=True)
        index = tuple(
            window[0] if a == "Y" else window[1] if a == "X" else slice(None) for a in axes
        )
        return _decode(source, series)[index]
    check_declared_size(source, keyframe.shape, series.dtype, limits, in_memory=True, what="page")
    planes = [_crop_page(page, keyframe, window, source) for page in series.pages]
    window_sizes = {"Y": window[0].stop - window[0].start, "X": window[1].stop - window[1].start}
    out_shape = [window_sizes.get(a, n) for a, n in zip(axes, series.shape, strict=True)]
    return np.stack(planes).reshape(out_shape)


def read_tile(
    path: Path,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    axes: str | None = None,
    timepoint: int | None = None,
) -> np.ndarray:
    """Read the window ``[y0:y1, x0:x1]`` (px) of every plane of a file, as ``ZCYX``.

    Memory used is about the window (plus one decoded page for compressed files), so files
    larger than RAM can be analysed tile by tile. Use :func:`read_info` for the full shape.

    Returns
    -------
    ndarray
        Shape (Z, C, y1 - y0, x1 - x0), native byte order, a copy (not a memmap).

    Raises
    ------
    ValueError
        When the window is empty or outside the image.
    InvalidImageError
        As in :func:`read_stack`.

    Notes
    -----
    OME-Zarr stores decode only the chunks the window overlaps; ``.czi`` / ``.nd2`` files
    decode the whole plane set of the first scene (within ``ReadLimits.max_in_memory_bytes``)
    and return the window.
    """
    source = str(path)
    if is_zarr_name(path.name):
        return read_zarr_tile(
            path, (slice(y0, y1), slice(x0, x1)), limits=limits, timepoint=timepoint
        )
    if is_vendor_name(path.name):
        data = read_vendor(path, limits=limits, timepoint=timepoint)[0]
        height, width = data.shape[2:]
        if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
            raise ValueError(
                f"{source}: tile [{y0}:{y1}, {x0}:{x1}] is empty or outside the image "
                f"({height}x{width} px)"
            )
        return np.ascontiguousarray(data[:, :, y0:y1, x0:x1])
    with open_tiff(path) as tif:
        series, info = inspect_tiff(tif, axes=axes, timepoint=timepoint, limits=limits)
        z, c, height, width = info.shape_zcyx
        if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
            raise ValueError(
                f"{source}: tile [{y0}:{y1}, {x0}:{x1}] is empty or outside the image "
                f"({height}x{width} px)"
            )
        check_declared_size(
            source, (z, c, y1 - y0, x1 - x0), info.dtype, limits, in_memory=True, what="tile"
        )
        window = (slice(y0, y1), slice(x0, x1))
        if info.memmappable:
            zcyx = to_zcyx(
                _memmap(path, series), info.file_axes, source=source, timepoint=timepoint
            )
            return np.array(zcyx[:, :, window[0], window[1]])
        raw = _read_window_pagewise(series, window, info.file_axes, source, limits)
    tile = to_zcyx(raw, info.file_axes, source=source, timepoint=timepoint)
    return np.ascontiguousarray(tile).astype(tile.dtype.newbyteorder("="), copy=False)
