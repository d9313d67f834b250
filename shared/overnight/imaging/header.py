"""Check a TIFF's header before any pixel is read, and say what the file holds.

Each problem (missing, empty, not a TIFF, damaged IFDs, truncated data, unsupported pixel type,
a declared size beyond :class:`ReadLimits`, compressed chunks too big to decode) raises
:class:`InvalidImageError` naming the file, so no tifffile traceback reaches the user and a
decompression bomb is refused before anything is allocated.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration, read_calibration
from overnight.imaging.limits import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_declared_size,
    check_pixel_type,
)

logger = logging.getLogger(__name__)


class _TifffileRecords(logging.Filter):
    """Keeps tifffile's own log lines off the terminal.

    Each goes to this module's logger at DEBUG; while :func:`open_tiff` reads a header it is
    also kept, to tell the user what broke.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        logger.debug("tifffile: %s", message)
        kept = getattr(self.local, "messages", None)
        if kept is not None:
            kept.append(message)
        return False  # handled here: nothing reaches tifffile's own handlers

    @contextmanager
    def kept(self) -> Iterator[list[str]]:
        """The messages tifffile logs in this thread while the block runs."""
        messages: list[str] = []
        self.local.messages = messages
        try:
            yield messages
        finally:
            self.local.messages = None


_TIFFFILE_RECORDS = _TifffileRecords()
logging.getLogger("tifffile").addFilter(_TIFFFILE_RECORDS)

# What tifffile and the codecs raise on malformed files (imagecodecs errors are RuntimeErrors;
# corrupt tags also surface as ZeroDivisionError and AssertionError from tifffile's internals,
# found by the fuzz test in tests/imaging/test_reader.py).
TIFF_ERRORS = (
    ArithmeticError,
    AssertionError,
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
def open_tiff(path: Path) -> Iterator[tifffile.TiffFile]:
    """Open ``path`` with tifffile, turning a missing, empty or non-TIFF file into an error.

    Raises
    ------
    InvalidImageError
        Naming the file and saying what it is instead (``"it is a PNG image"``).
    """
    source = str(path)
    if not path.is_file():
        raise InvalidImageError(source, "file not found" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise InvalidImageError(source, "file is empty (0 bytes)")
    with _TIFFFILE_RECORDS.kept() as messages:
        try:
            tif = tifffile.TiffFile(path)
        except TIFF_ERRORS as err:
            raise InvalidImageError(source, _describe_non_tiff(path)) from err
        try:
            n_pages = len(tif.pages)  # follows every page's offset: a cut file shows here
        except TIFF_ERRORS:
            n_pages = 0
    with tif:
        lost = [m for m in messages if "invalid page offset" in m or "invalid offset to page" in m]
        if lost:
            raise InvalidImageError(
                source,
                f"file is truncated: {n_pages} page(s) read, then the next page lies past the "
                f"end of the file ({path.stat().st_size} bytes) — an interrupted copy? Copy the "
                "file again",
            )
        yield tif


def _first_series(tif: tifffile.TiffFile, source: str) -> tifffile.TiffPageSeries:
    try:
        series = tif.series
    except TIFF_ERRORS as err:
        raise InvalidImageError(source, f"TIFF structure cannot be parsed ({err})") from err
    if not series or series[0].keyframe is None:
        raise InvalidImageError(
            source, "is a damaged TIFF: no readable image (its first IFD is missing or corrupt)"
        )
    if len(series) > 1:
        logger.info("%s: holds %d image series; reading the first", source, len(series))
    return series[0]


def series_keyframe(series: tifffile.TiffPageSeries) -> tifffile.TiffPage:
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
    keyframe = series_keyframe(series)
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
        except TIFF_ERRORS as err:
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
        chunk_shape = keyframe.chunks  # contiguous samples included
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


def inspect_tiff(
    tif: tifffile.TiffFile,
    *,
    axes: str | None,
    timepoint: int | None,
    limits: ReadLimits,
) -> tuple[tifffile.TiffPageSeries, ImageInfo]:
    """Check the header of an open file; return its first series and what it declares.

    Checks, in order: pixel type, declared size against ``limits`` (not yet the in-memory
    budget: the caller knows whether it will decode), truncation and compressed chunk size,
    and that the axes can be placed in ZCYX.

    Raises
    ------
    InvalidImageError
        For any of the problems above.
    """
    source = _source(tif)
    try:
        return _inspect_series(tif, source, axes=axes, timepoint=timepoint, limits=limits)
    except TIFF_ERRORS as err:  # tifffile parses IFDs and tags lazily, so errors surface here
        raise InvalidImageError(source, f"TIFF structure cannot be parsed ({err})") from err


def _inspect_series(
    tif: tifffile.TiffFile,
    source: str,
    *,
    axes: str | None,
    timepoint: int | None,
    limits: ReadLimits,
) -> tuple[tifffile.TiffPageSeries, ImageInfo]:
    series = _first_series(tif, source)
    file_axes = (axes or series.axes).upper()
    file_shape = tuple(int(s) for s in series.shape)
    check_pixel_type(source, series.dtype)
    if 0 in file_shape:
        raise InvalidImageError(source, f"declares an empty image (shape {file_shape})")
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
    with open_tiff(path) as tif:
        return inspect_tiff(tif, axes=axes, timepoint=timepoint, limits=limits)[1]
