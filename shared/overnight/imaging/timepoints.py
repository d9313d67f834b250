"""A TIFF's timepoints: how many its header declares, and when each was taken.

A TIFF whose first series has a ``T`` axis longer than 1 (an OME-TIFF with ``SizeT > 1``, an
ImageJ hyperstack with ``frames=``, a tifffile file written with ``metadata={"axes": "TZCYX"}``)
is one image per timepoint in every runner, as the timepoints of vendor files are
(:func:`tiff_parts`; ids ``name~t003``).

Only the first page's ``ImageDescription`` is read, never a pixel or the other pages' IFDs,
so a remote file needs a few small range reads (:func:`tiff_parts` takes an open binary
stream). The count it gives is the ``T`` size tifffile's series has for the same file; files
of other kinds (MicroManager, LSM, ...) are one image, and reading one with several
timepoints fails with the reason.

When each timepoint was taken (:func:`timepoint_time`):

- OME: ``Image/AcquisitionDate`` plus the ``DeltaT`` (with ``DeltaTUnit``, default s) of the
  timepoint's first ``Plane``: ``acquired_at`` (ISO 8601) and ``elapsed_s``;
- ImageJ: ``finterval`` (with ``tunit``, default s) times the timepoint: ``elapsed_s`` only,
  ImageJ stores no date.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile

from overnight.errors import InvalidImageError, StorageError, TransientError
from overnight.imaging.files import ImagePart, file_parts
from overnight.imaging.header import TIFF_ERRORS, ImageInfo, series_keyframe
from overnight.imaging.limits import ReadLimits, check_declared_size

logger = logging.getLogger(__name__)

#: Time units as OME (``DeltaTUnit``) and ImageJ (``tunit``) write them, in seconds.
TIME_UNIT_S: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
}


@dataclass(frozen=True)
class TimepointTime:
    """When one timepoint was taken: ISO 8601 time and seconds after the first timepoint."""

    acquired_at: str | None = None
    elapsed_s: float | None = None


def _description(tif: tifffile.TiffFile) -> str:
    page = tif.pages.first
    return str(page.description or "")


def _ome_pixels(description: str) -> tuple[ElementTree.Element, ElementTree.Element] | None:
    """``(Image, Pixels)`` of the first OME image, or None when ``description`` is not OME."""
    if "<OME" not in description[:4096]:
        return None
    try:
        root = ElementTree.fromstring(description)
    except ElementTree.ParseError:
        return None
    image = root.find("{*}Image")
    pixels = image.find("{*}Pixels") if image is not None else None
    return (image, pixels) if image is not None and pixels is not None else None


def _shaped_timepoints(description: str) -> int:
    try:
        shaped = json.loads(description)
    except ValueError:
        return 1
    if not isinstance(shaped, dict):
        return 1
    shape, axes = shaped.get("shape"), str(shaped.get("axes", "")).upper()
    if not isinstance(shape, list) or len(axes) != len(shape) or "T" not in axes:
        return 1
    return max(1, int(shape[axes.index("T")]))


def declared_timepoints(tif: tifffile.TiffFile) -> int:
    """How many timepoints the first series of an open TIFF declares (1 when it has no T).

    Examples
    --------
    >>> import io, numpy as np
    >>> buffer = io.BytesIO()
    >>> tifffile.imwrite(buffer, np.zeros((3, 2, 8, 8), "uint8"), imagej=True,
    ...                  metadata={"axes": "TCYX"})
    >>> _ = buffer.seek(0)
    >>> declared_timepoints(tifffile.TiffFile(buffer))
    3
    """
    description = _description(tif)
    ome = _ome_pixels(description)
    if ome is not None:
        return max(1, int(ome[1].get("SizeT", "1")))
    if description.startswith("ImageJ="):
        return max(1, int(tif.imagej_metadata.get("frames", 1) if tif.imagej_metadata else 1))
    if description.startswith("{"):
        return _shaped_timepoints(description)
    return 1


def _seconds(value: object, unit: str | None) -> float | None:
    try:
        amount = float(str(value))
    except ValueError:
        return None
    factor = TIME_UNIT_S.get((unit or "s").strip().lower().replace("μ", "µ"))
    return amount * factor if factor is not None else None


def timepoint_time(tif: tifffile.TiffFile, timepoint: int) -> TimepointTime:
    """When ``timepoint`` (from 0) of an open TIFF was taken, as far as its metadata says.

    Returns
    -------
    TimepointTime
        ``acquired_at``: OME ``AcquisitionDate`` plus the timepoint's ``DeltaT`` (ISO 8601),
        the date alone when the planes carry no ``DeltaT``; ``elapsed_s``: the timepoint's
        ``DeltaT`` (OME) or ``timepoint * finterval`` (ImageJ), in s. None where not stated.
    """
    description = _description(tif)
    ome = _ome_pixels(description)
    if ome is not None:
        image, pixels = ome
        elapsed_s = None
        for plane in pixels.findall("{*}Plane"):
            if int(plane.get("TheT", "0")) == timepoint and plane.get("DeltaT") is not None:
                elapsed_s = _seconds(plane.get("DeltaT"), plane.get("DeltaTUnit"))
                break
        date = (image.findtext("{*}AcquisitionDate") or "").strip() or None
        return TimepointTime(_plus(date, elapsed_s), elapsed_s)
    metadata = tif.imagej_metadata if description.startswith("ImageJ=") else None
    if metadata and "finterval" in metadata:
        interval_s = _seconds(metadata["finterval"], metadata.get("tunit"))
        if interval_s is not None:
            return TimepointTime(None, timepoint * interval_s)
    return TimepointTime()


def _plus(date: str | None, elapsed_s: float | None) -> str | None:
    """``date`` (ISO 8601) moved on by ``elapsed_s``; as written when it cannot be parsed."""
    if date is None or elapsed_s is None:
        return date
    try:
        start = datetime.fromisoformat(date)
    except ValueError:
        logger.info("acquisition date %r is not ISO 8601; kept as written", date)
        return date
    return (start + timedelta(seconds=elapsed_s)).isoformat()


def tiff_parts(file: Path | BinaryIO) -> list[ImagePart]:
    """One :class:`ImagePart` per timepoint of a TIFF (one part without a ``T`` axis).

    Parameters
    ----------
    file : Path or binary stream
        The TIFF, or a seekable stream over it (a remote object read by range): only its
        header and first ``ImageDescription`` are read.

    Returns
    -------
    list of ImagePart
        A file that cannot be parsed is one part: reading it fails later, with the reason.

    Raises
    ------
    StorageError, TransientError
        When the store behind ``file`` fails (not the file): the listing is tried again later
        rather than keeping a wrong count.
    """
    try:
        with tifffile.TiffFile(file) as tif:
            n_t = declared_timepoints(tif)
    except (StorageError, TransientError):
        raise
    except Exception as err:  # noqa: BLE001 - any parse error: one image, refused when read
        logger.debug("%s: timepoints not read (%s); one image", file, err)
        return [ImagePart()]
    return file_parts(1, n_t)


def timepoint_metadata(
    tif: tifffile.TiffFile, axes: str, shape: tuple[int, ...], timepoint: int | None
) -> dict[str, object]:
    """``ImageStack.metadata`` of the timepoint read from a TIFF whose series has ``axes``.

    Returns
    -------
    dict
        ``timepoint``, ``n_timepoints`` and, where the file states them, ``acquired_at`` and
        ``elapsed_s`` (see :func:`timepoint_time`), for a series with ``T`` > 1 and a chosen
        ``timepoint``; empty otherwise.
    """
    n_t = int(shape[axes.index("T")]) if "T" in axes else 1
    if n_t < 2 or timepoint is None:
        return {}
    when = timepoint_time(tif, timepoint)
    fields: dict[str, object] = {"timepoint": timepoint, "n_timepoints": n_t}
    if when.acquired_at is not None:
        fields["acquired_at"] = when.acquired_at
    if when.elapsed_s is not None:
        fields["elapsed_s"] = round(when.elapsed_s, 6)
    return fields


def timepoint_pages(
    axes: str, shape: tuple[int, ...], page_shape: tuple[int, ...], n_pages: int, timepoint: int
) -> range | None:
    """The pages that hold one timepoint, when a series can be decoded by timepoint.

    That is when ``T`` is the series' first axis and its pages hold one plane each, in order
    (what OME-TIFF writers, ImageJ and tifffile do): timepoint ``t`` is then pages
    ``t * n .. (t + 1) * n - 1``. None otherwise (the caller decodes the whole series).

    Examples
    --------
    >>> timepoint_pages("TZCYX", (3, 2, 2, 8, 9), (8, 9), 12, 1)
    range(4, 8)
    >>> timepoint_pages("ZTYX", (2, 3, 8, 9), (8, 9), 6, 1) is None
    True
    """
    if not axes.startswith("T") or not 0 <= timepoint < shape[0]:
        return None
    plane = 1
    for size in page_shape:
        plane *= size
    per_t = 1
    for size in shape[1:]:
        per_t *= size
    if per_t % plane or tuple(shape[-len(page_shape) :]) != tuple(page_shape):
        return None
    n = per_t // plane
    if n * shape[0] != n_pages:
        return None
    return range(timepoint * n, (timepoint + 1) * n)


def decode_timepoint(
    series: tifffile.TiffPageSeries, info: ImageInfo, timepoint: int | None, limits: ReadLimits
) -> np.ndarray | None:
    """Decode only one timepoint's pages of a ``T``-first series (a compressed TIFF movie).

    Parameters
    ----------
    series : tifffile.TiffPageSeries
        The series :func:`~overnight.imaging.header.inspect_tiff` checked.
    info : ImageInfo
        What its header declares (axes, shape, pixel type).
    timepoint : int, optional
        The timepoint to decode; None decodes nothing.
    limits : ReadLimits
        The timepoint is checked against ``max_in_memory_bytes`` first.

    Returns
    -------
    ndarray or None
        The timepoint in the file's axes with ``T`` of length 1, native byte order; None when
        the series cannot be decoded by timepoint (:func:`timepoint_pages`).

    Raises
    ------
    InvalidImageError
        The timepoint is larger than the budget, or its pages cannot be decoded.
    """
    if timepoint is None:
        return None
    keys = timepoint_pages(
        info.file_axes,
        info.file_shape,
        tuple(series_keyframe(series).shape),
        len(series.pages),
        timepoint,
    )
    if keys is None:
        return None
    shape = (1, *info.file_shape[1:])
    check_declared_size(info.source, shape, info.dtype, limits, in_memory=True)
    try:
        data = series.asarray(key=list(keys)).reshape(shape)
    except TIFF_ERRORS as err:
        raise InvalidImageError(info.source, f"pixel data cannot be decoded ({err})") from err
    return np.asarray(data.astype(data.dtype.newbyteorder("="), copy=False))
