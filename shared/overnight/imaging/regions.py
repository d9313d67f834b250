"""Read a field by ``YX`` region, so a field larger than the memory budget is never decoded whole.

:func:`open_regions` opens a TIFF / OME-TIFF or an OME-Zarr folder once and returns a
:class:`FieldRegions` whose :meth:`~FieldRegions.read` decodes one window of every z-slice and
channel of one timepoint as ``ZCYX``. A file with several timepoints (an OME-TIFF with
``SizeT > 1``, an ImageJ hyperstack, a ``TCZYX`` OME-Zarr) is opened one ``timepoint`` at a
time, as every runner lists it (one image per timepoint, ids ``name~t003``, see
:mod:`overnight.imaging.parts`):

- uncompressed contiguous TIFFs are memory-mapped and sliced;
- compressed or tiled TIFFs go through tifffile's Zarr view (``aszarr``), which decodes only
  the tiles or strips the window overlaps (a 12288² deflate mosaic in 1024² tiles reads a
  2304² window by decoding 9 tiles per plane, not the 288 MiB plane), of the timepoint's
  pages only;
- OME-Zarr images decode only the chunks the window overlaps, whether a local folder
  (:func:`open_regions`) or an object store such as S3 (:func:`zarr_regions` of the image
  :func:`~overnight.imaging.zarr_store.open_zarr_in_store` opened: each chunk one object read).

Vendor files (``.czi``, ``.nd2``) cannot be read by region: their readers decode whole scenes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration
from overnight.imaging.files import IMAGE_EXTENSIONS
from overnight.imaging.header import TIFF_ERRORS, open_tiff, read_info
from overnight.imaging.limits import DEFAULT_LIMITS, ReadLimits
from overnight.imaging.reader import read_tile
from overnight.imaging.stack import ImageStack
from overnight.imaging.timepoints import timepoint_metadata
from overnight.imaging.zarr_store import (
    ZarrImage,
    is_zarr_name,
    open_zarr,
    timepoint_shape_zcyx,
    zarr_tile_reader,
)

#: Reads the ``(Y, X)`` window of every z-slice and channel as ``ZCYX``.
WindowReader = Callable[[slice, slice], np.ndarray]


@dataclass(frozen=True)
class FieldRegions:
    """A field opened for reading by region: its declared shape, calibration and reader.

    Attributes
    ----------
    source : str
        The file, for messages.
    shape_zcyx : tuple of int
        (Z, C, Y, X) sizes of the whole field.
    dtype : numpy.dtype
        The stored pixel type.
    calibration : Calibration
        Pixel size (µm), z-step (µm) and channel names, as the file states them.
    metadata : Mapping
        What the whole-field reader puts in ``ImageStack.metadata`` about the acquisition:
        ``acquired_at`` and, for one timepoint of several, ``timepoint``, ``n_timepoints`` and
        ``elapsed_s`` (see :func:`~overnight.imaging.timepoints.timepoint_metadata`).
    """

    source: str
    shape_zcyx: tuple[int, int, int, int]
    dtype: np.dtype
    calibration: Calibration
    reader: WindowReader
    metadata: Mapping[str, object] = field(default_factory=dict)

    def read(self, ys: slice, xs: slice) -> np.ndarray:
        """The ``[ys, xs]`` window (px) of every z-slice and channel, ``ZCYX``, in memory.

        Raises
        ------
        ValueError
            When the window is empty or outside the field.
        """
        _, _, height, width = self.shape_zcyx
        if not (0 <= ys.start < ys.stop <= height and 0 <= xs.start < xs.stop <= width):
            raise ValueError(
                f"{self.source}: window [{ys.start}:{ys.stop}, {xs.start}:{xs.stop}] is empty "
                f"or outside the field ({height}x{width} px)"
            )
        return np.ascontiguousarray(self.reader(ys, xs))

    def stack(self, data: np.ndarray, image_id: str) -> ImageStack:
        """An :class:`ImageStack` of ``data`` (a window, or a placeholder) with this calibration."""
        return ImageStack(
            data=data,
            image_id=image_id,
            source=self.source,
            pixel_size_um=self.calibration.pixel_size_um,
            z_step_um=self.calibration.z_step_um,
            channel_names=self.calibration.channel_names,
            metadata={
                "file_shape": list(self.shape_zcyx),
                "read_by": "region",
                **self.metadata,
            },
        )

    def shape_only_stack(self, image_id: str) -> ImageStack:
        """A stack that has the field's shape and dtype but holds no pixels (all zero, 0 bytes).

        For the record (``result.json``) of a field analysed in blocks; never for the steps.
        """
        return self.stack(np.broadcast_to(np.zeros((), self.dtype), self.shape_zcyx), image_id)


def can_read_regions(path: Path) -> bool:
    """Whether ``path`` is a TIFF / OME-TIFF or an OME-Zarr folder (readable by region)."""
    return is_zarr_name(path.name) or path.name.lower().endswith(IMAGE_EXTENSIONS)


def zarr_regions(
    image: ZarrImage, limits: ReadLimits = DEFAULT_LIMITS, timepoint: int | None = None
) -> FieldRegions:
    """One timepoint of an opened OME-Zarr ``image`` (local folder or object store) by region.

    Windows are read from the opened image (:func:`~overnight.imaging.zarr_store.zarr_tile_reader`):
    only the chunks a window overlaps are fetched and decoded.

    Raises
    ------
    InvalidImageError
        Several timepoints and no ``timepoint``, or one out of range.
    """
    shape_zcyx = timepoint_shape_zcyx(image, timepoint)
    reader = zarr_tile_reader(image, limits=limits, timepoint=timepoint)
    metadata = {"file_format": "ome-zarr"}  # as the whole-field reader says
    return FieldRegions(
        image.source,
        shape_zcyx,
        np.dtype(image.array.dtype),
        image.calibration,
        reader,
        metadata,
    )


def _tiff_zarr_reader(
    series: Any, axes: str, source: str, timepoint: int | None = None
) -> WindowReader:
    """A window reader through tifffile's Zarr view of ``series`` (stored ``axes``).

    With a ``T`` axis and a ``timepoint``, only that timepoint's pages are decoded. The view
    is made on the first read, so opening a field that is then read whole costs nothing.
    """
    keep_t = "T" in axes and timepoint is not None
    read_axes = axes.replace("T", "") if keep_t else axes
    opened: list[Any] = []

    def reader(ys: slice, xs: slice) -> np.ndarray:
        if not opened:
            import zarr

            opened.append(zarr.open(series.aszarr(), mode="r"))
        index = tuple(_axis_index(a, ys, xs, timepoint if keep_t else None) for a in axes)
        try:
            raw = np.asarray(opened[0][index])
        except TIFF_ERRORS as err:
            raise InvalidImageError(source, f"pixel data cannot be decoded ({err})") from err
        native = raw.astype(raw.dtype.newbyteorder("="), copy=False)
        return to_zcyx(native, read_axes, source=source, timepoint=None if keep_t else timepoint)

    return reader


def _axis_index(axis: str, ys: slice, xs: slice, timepoint: int | None) -> slice | int:
    """Index of one stored axis: the window in Y and X, ``timepoint`` in T, all of the others."""
    if axis == "Y":
        return ys
    if axis == "X":
        return xs
    if axis == "T" and timepoint is not None:
        return timepoint
    return slice(None)


@contextmanager
def open_regions(
    path: Path, *, limits: ReadLimits = DEFAULT_LIMITS, timepoint: int | None = None
) -> Iterator[FieldRegions]:
    """Open one timepoint of the field at ``path`` for reading by region, open inside the block.

    Parameters
    ----------
    path : Path
        A TIFF / OME-TIFF or an OME-Zarr folder.
    limits : ReadLimits
        Checked against the header, as :func:`~overnight.imaging.read_stack` does.
    timepoint : int, optional
        Which timepoint of a file with several (``T`` > 1) to read; None for a file with one.

    Raises
    ------
    InvalidImageError
        A file that cannot be read by region (a vendor format), several timepoints and no
        ``timepoint`` (or one out of range), or any problem
        :func:`~overnight.imaging.read_stack` reports.
    """
    source = str(path)
    if is_zarr_name(path.name):
        yield zarr_regions(open_zarr(path, limits=limits), limits, timepoint)
        return
    if not can_read_regions(path):
        raise InvalidImageError(
            source,
            "cannot be read by region (only TIFF / OME-TIFF and OME-Zarr can); convert it to "
            "OME-TIFF or OME-Zarr, or raise OVERNIGHT_MAX_WORKING_SET_GB to analyse it whole",
        )
    info = read_info(path, limits=limits, timepoint=timepoint)  # refuses T > 1 without one
    with ExitStack() as stack:
        tif = stack.enter_context(open_tiff(path))
        metadata: dict[str, object] = {}
        if info.calibration.acquired_at:
            metadata["acquired_at"] = info.calibration.acquired_at
        metadata |= timepoint_metadata(tif, info.file_axes, info.file_shape, timepoint)
        reader: WindowReader
        if info.memmappable:

            def reader(ys: slice, xs: slice) -> np.ndarray:
                return read_tile(
                    path, ys.start, ys.stop, xs.start, xs.stop, limits=limits, timepoint=timepoint
                )

        else:
            series = tif.series[0]
            if series.axes != info.file_axes or tuple(series.shape) != info.file_shape:
                raise InvalidImageError(
                    source,
                    f"stores axes {series.axes!r} {tuple(series.shape)} but is read as "
                    f"{info.file_axes!r} {info.file_shape}; it cannot be read by region",
                )
            reader = _tiff_zarr_reader(series, info.file_axes, source, timepoint)
        yield FieldRegions(source, info.shape_zcyx, info.dtype, info.calibration, reader, metadata)
