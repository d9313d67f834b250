"""Read one TIFF / OME-TIFF field of view as a ``ZCYX`` :class:`ImageStack`, refusing bad files.

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
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration, read_calibration
from overnight.imaging.files import image_id_from_name
from overnight.imaging.limits import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_declared_size,
    check_pixel_type,
)
from overnight.imaging.stack import ImageStack

logger = logging.getLogger(__name__)

# What tifffile and the codecs raise on malformed files (imagecodecs errors are RuntimeErrors).
_TIFF_ERRORS = (
    tifffile.TiffFileError,
    ValueError,
    OSError,
    RuntimeError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
)

# First bytes of files that are often misnamed .tif, for a message that says what the file is.
_MAGIC_NAMES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"PK\x03\x04": "a ZIP archive",
    b"%PDF": "a PDF document",
    b"\x89HDF": "an HDF5 file",
}
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header declares, without reading pixels.

    ``shape_zcyx`` is after normalisation (and timepoint selection); ``file_axes`` and
    ``file_shape`` are as stored. ``memmappable`` says whether the pixels can be memory-mapped.
    """

    source: str
    file_axes: str
    file_shape: tuple[int, ...]
    shape_zcyx: tuple[int, int, int, int]
    dtype: np.dtype
    memmappable: bool
    calibration: Calibration


def _describe_non_tiff(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:4] in _TIFF_MAGICS:
        return "is a damaged TIFF (its header cannot be parsed)"
    for magic, kind in _MAGIC_NAMES.items():
        if head.startswith(magic):
            return f"is not a TIFF file; it is {kind} (first bytes {head[:8]!r})"
    return f"is not a TIFF file (first bytes {head[:8]!r})"


def _source(tif: tifffile.TiffFile) -> str:
    """Return the path of an open file as given by the caller, for messages."""
    return str(tif.filehandle.path)


@contextmanager
def _open_tiff(path: Path) -> Iterator[tifffile.TiffFile]:
    source = str(path)
    if not path.is_file():
        raise InvalidImageError(source, "file not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise InvalidImageError(source, "file is empty (0 bytes)")
    try:
        tif = tifffile.TiffFile(path)
    except _TIFF_ERRORS as err:
        raise InvalidImageError(source, _describe_non_tiff(path)) from err
    with tif:
        yield tif


def _first_series(tif: tifffile.TiffFile, source: str) -> tifffile.TiffPageSeries:
    try:
        series = tif.series
    except _TIFF_ERRORS as err:
        raise InvalidImageError(source, f"TIFF structure cannot be parsed ({err})") from err
    if not series or series[0].keyframe is None:
        raise InvalidImageError(
            source, "is a damaged TIFF: no readable image (its first IFD is missing or corrupt)"
        )
    if len(series) > 1:
        logger.info("%s: holds %d image series; reading the first", source, len(series))
    return series[0]


def _keyframe(series: tifffile.TiffPageSeries) -> tifffile.TiffPage:
    """Return the page whose tags describe every page of ``series``."""
    keyframe = series.keyframe
    if keyframe is None:
        raise InvalidImageError(_source(series.parent), "TIFF holds no image data")
    return keyframe


def _check_pages(
    tif: tifffile.TiffFile, series: tifffile.TiffPageSeries, limits: ReadLimits
) -> None:
    """Refuse strips/tiles beyond the end of the file and compressed chunks too big to decode."""
    source = _source(tif)
    file_size = tif.filehandle.size
    keyframe = _keyframe(series)
    n_planes = math.prod(series.shape) // max(math.prod(keyframe.shape), 1)
    if len(series.pages) < n_planes:
        raise InvalidImageError(
            source,
            f"file is truncated or damaged: it declares {n_planes} image planes but only "
            f"{len(series.pages)} can be found (an interrupted copy?)",
        )
    if series.dataoffset is not None and series.dataoffset + series.nbytes > file_size:
        raise InvalidImageError(
            source,
            f"file is truncated: its pixel data ends at byte {series.dataoffset + series.nbytes} "
            f"but the file has only {file_size} bytes (an interrupted copy?)",
        )
    for page in series.pages:
        if page is None:
            continue
        try:
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
        except _TIFF_ERRORS as err:
            raise InvalidImageError(source, f"page {page.index} cannot be parsed ({err})") from err
        if max(ends, default=0) > file_size:
            raise InvalidImageError(
                source,
                f"file is truncated: page {page.index} has pixel data up to byte {max(ends)} "
                f"but the file has only {file_size} bytes (an interrupted copy?)",
            )
        if keyframe.compression == 1 and sum(page.databytecounts) < keyframe.nbytes:
            raise InvalidImageError(
                source,
                f"file is truncated or its header is corrupt: page {page.index} declares "
                f"{keyframe.nbytes} bytes of pixels but its strips hold {sum(page.databytecounts)}",
            )
    if keyframe.compression != 1:
        chunk_shape = (*keyframe.chunks, keyframe.samplesperpixel)
        check_declared_size(
            source, chunk_shape, series.dtype, limits, in_memory=True, what="compressed tile"
        )


def _is_memmappable(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> bool:
    native = series.dtype.itemsize == 1 or tif.byteorder == ("<" if np.little_endian else ">")
    return series.dataoffset is not None and native


def _zcyx_shape(
    shape: tuple[int, ...], dtype: np.dtype, axes: str, source: str, timepoint: int | None
) -> tuple[int, int, int, int]:
    dummy = np.broadcast_to(np.zeros((), dtype), shape)  # no memory, shape only
    z, c, y, x = to_zcyx(dummy, axes, source=source, timepoint=timepoint).shape
    return z, c, y, x


def _inspect(
    tif: tifffile.TiffFile,
    *,
    axes: str | None,
    timepoint: int | None,
    limits: ReadLimits,
) -> tuple[tifffile.TiffPageSeries, ImageInfo]:
    source = _source(tif)
    series = _first_series(tif, source)
    file_axes = (axes or series.axes).upper()
    file_shape = tuple(int(s) for s in series.shape)
    check_pixel_type(source, series.dtype)
    memmappable = _is_memmappable(tif, series)
    check_declared_size(source, file_shape, series.dtype, limits, in_memory=False)
    _check_pages(tif, series, limits)
    info = ImageInfo(
        source=source,
        file_axes=file_axes,
        file_shape=file_shape,
        shape_zcyx=_zcyx_shape(file_shape, series.dtype, file_axes, source, timepoint),
        dtype=np.dtype(series.dtype.name),
        memmappable=memmappable,
        calibration=read_calibration(tif),
    )
    return series, info


def _check_channels(info: ImageInfo, channels_required: int) -> None:
    n_channels = info.shape_zcyx[1]
    if n_channels < channels_required:
        plural = "channel" if n_channels == 1 else "channels"
        names = " (cell, pnp)" if channels_required == 2 else ""
        raise InvalidImageError(
            info.source,
            f"has {n_channels} {plural}; the pipeline needs {channels_required}{names} "
            f"— check the channel settings (file axes {info.file_axes!r}, shape {info.file_shape})",
        )


def _memmap(path: Path, series: tifffile.TiffPageSeries) -> np.ndarray:
    """Map the series read-only; only for :func:`_is_memmappable` series."""
    offset = int(series.dataoffset or 0)
    return np.memmap(
        path, dtype=np.dtype(series.dtype), mode="r", offset=offset, shape=series.shape
    )


def _decode(source: str, series: tifffile.TiffPageSeries) -> np.ndarray:
    try:
        data = series.asarray()
    except _TIFF_ERRORS as err:
        raise InvalidImageError(source, f"pixel data cannot be decoded ({err})") from err
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def read_info(
    path: Path,
    *,
    axes: str | None = None,
    timepoint: int | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImageInfo:
    """Check a file's header and say what it holds, without reading pixels.

    Parameters and errors as in :func:`read_stack`.
    """
    with _open_tiff(path) as tif:
        return _inspect(
            tif,
            axes=axes,
            timepoint=timepoint,
            limits=limits,
        )[1]


def read_stack(
    path: Path,
    *,
    image_id: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    channels_required: int = 1,
    memmap: bool = True,
    axes: str | None = None,
    timepoint: int | None = None,
) -> ImageStack:
    """Read a TIFF or OME-TIFF as a ``ZCYX`` stack with its calibration.

    Parameters
    ----------
    path : Path
        The file (``.tif``, ``.tiff``, ``.ome.tif``).
    image_id : str, optional
        Defaults to the file name without its extension.
    limits : ReadLimits
        Size budget checked against the header before reading.
    channels_required : int
        Fewest channels (C after normalisation) the caller needs.
    memmap : bool
        Memory-map uncompressed contiguous files (``data`` is then a read-only lazy view);
        False decodes into memory.
    axes : str, optional
        The file's axes in tifffile letters, overriding its metadata (e.g. ``"CYX"`` for a
        two-page TIFF with no metadata, which is otherwise read as a z-stack).
    timepoint : int, optional
        Which timepoint to keep from a file with a T axis longer than 1.

    Returns
    -------
    ImageStack
        ``data`` of shape (Z, C, Y, X) in the file's unsigned integer type; ``pixel_size_um``,
        ``z_step_um`` and ``channel_names`` from the file when it states them; ``metadata``
        holds ``file_axes`` and ``file_shape``.

    Raises
    ------
    InvalidImageError
        File missing, empty, not a TIFF, truncated, corrupt, of an unsupported pixel type,
        larger than ``limits``, with axes that cannot be placed in ZCYX, or with fewer than
        ``channels_required`` channels.
    """
    source = str(path)
    with _open_tiff(path) as tif:
        series, info = _inspect(tif, axes=axes, timepoint=timepoint, limits=limits)
        _check_channels(info, channels_required)
        if memmap and info.memmappable:
            raw = _memmap(path, series)
        else:
            check_declared_size(source, info.file_shape, info.dtype, limits, in_memory=True)
            raw = _decode(source, series)
    data = to_zcyx(raw, info.file_axes, source=source, timepoint=timepoint)
    logger.debug("read %s as ZCYX %s (memmap=%s)", source, data.shape, isinstance(raw, np.memmap))
    return ImageStack(
        data=data,
        image_id=image_id or image_id_from_name(path.name),
        source=source,
        pixel_size_um=info.calibration.pixel_size_um,
        z_step_um=info.calibration.z_step_um,
        channel_names=info.calibration.channel_names,
        metadata={"file_axes": info.file_axes, "file_shape": list(info.file_shape)},
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
    except _TIFF_ERRORS as err:
        raise InvalidImageError(source, f"page {page.index} cannot be decoded ({err})") from err


def _read_window_pagewise(
    series: tifffile.TiffPageSeries,
    window: tuple[slice, slice],
    axes: str,
    source: str,
    limits: ReadLimits,
) -> np.ndarray:
    keyframe = _keyframe(series)
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
    """
    source = str(path)
    with _open_tiff(path) as tif:
        series, info = _inspect(tif, axes=axes, timepoint=timepoint, limits=limits)
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
