"""Read a field by ``YX`` region, so a field larger than the memory budget is never decoded whole.

:func:`open_regions` opens a TIFF / OME-TIFF or an OME-Zarr folder once and returns a
:class:`FieldRegions` whose :meth:`~FieldRegions.read` decodes one window of every z-slice and
channel as ``ZCYX``:

- uncompressed contiguous TIFFs are memory-mapped and sliced;
- compressed or tiled TIFFs go through tifffile's Zarr view (``aszarr``), which decodes only
  the tiles or strips the window overlaps (a 12288² deflate mosaic in 1024² tiles reads a
  2304² window by decoding 9 tiles per plane, not the 288 MiB plane);
- OME-Zarr stores decode only the chunks the window overlaps.

Vendor files (``.czi``, ``.nd2``) cannot be read by region: their readers decode whole scenes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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
from overnight.imaging.zarr_store import is_zarr_name, open_zarr, read_zarr_tile

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
    """

    source: str
    shape_zcyx: tuple[int, int, int, int]
    dtype: np.dtype
    calibration: Calibration
    reader: WindowReader

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
            metadata={"file_shape": list(self.shape_zcyx), "read_by": "region"},
        )

    def shape_only_stack(self, image_id: str) -> ImageStack:
        """A stack that has the field's shape and dtype but holds no pixels (all zero, 0 bytes).

        For the record (``result.json``) of a field analysed in blocks; never for the steps.
        """
        return self.stack(np.broadcast_to(np.zeros((), self.dtype), self.shape_zcyx), image_id)


def can_read_regions(path: Path) -> bool:
    """Whether ``path`` is a TIFF / OME-TIFF or an OME-Zarr folder (readable by region)."""
    return is_zarr_name(path.name) or path.name.lower().endswith(IMAGE_EXTENSIONS)


def _zcyx_shape(axes: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    sizes = dict(zip(axes, shape, strict=True))
    z, c, y, x = (int(sizes.get(a, 1)) for a in "ZCYX")
    return z, c, y, x


def _zarr_regions(path: Path, limits: ReadLimits) -> FieldRegions:
    image = open_zarr(path, limits=limits)
    shape = tuple(int(s) for s in image.array.shape)
    if "T" in image.axes and shape[image.axes.index("T")] > 1:
        raise InvalidImageError(
            str(path), "has several timepoints; a field read by region must have one"
        )

    def reader(ys: slice, xs: slice) -> np.ndarray:
        return read_zarr_tile(path, (ys, xs), limits=limits)

    kept = [(a, n) for a, n in zip(image.axes, shape, strict=True) if a != "T"]
    shape_zcyx = _zcyx_shape("".join(a for a, _ in kept), tuple(n for _, n in kept))
    return FieldRegions(
        str(path), shape_zcyx, np.dtype(image.array.dtype), image.calibration, reader
    )


def _tiff_zarr_reader(series: Any, axes: str, source: str) -> WindowReader:
    """A window reader through tifffile's Zarr view of ``series`` (stored ``axes``).

    The view is made on the first read, so opening a field that is then read whole costs
    nothing.
    """
    opened: list[Any] = []

    def reader(ys: slice, xs: slice) -> np.ndarray:
        if not opened:
            import zarr

            opened.append(zarr.open(series.aszarr(), mode="r"))
        index = tuple(ys if a == "Y" else xs if a == "X" else slice(None) for a in axes)
        try:
            raw = np.asarray(opened[0][index])
        except TIFF_ERRORS as err:
            raise InvalidImageError(source, f"pixel data cannot be decoded ({err})") from err
        return to_zcyx(raw.astype(raw.dtype.newbyteorder("="), copy=False), axes, source=source)

    return reader


@contextmanager
def open_regions(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[FieldRegions]:
    """Open the field at ``path`` for reading by region; the file stays open inside the block.

    Raises
    ------
    InvalidImageError
        A file that cannot be read by region (a vendor format, several timepoints), or any
        problem :func:`~overnight.imaging.read_stack` reports.
    """
    source = str(path)
    if is_zarr_name(path.name):
        yield _zarr_regions(path, limits)
        return
    if not can_read_regions(path):
        raise InvalidImageError(
            source,
            "cannot be read by region (only TIFF / OME-TIFF and OME-Zarr can); convert it to "
            "OME-TIFF or OME-Zarr, or raise OVERNIGHT_MAX_WORKING_SET_GB to analyse it whole",
        )
    info = read_info(path, limits=limits)
    if "T" in info.file_axes:
        raise InvalidImageError(
            source, "has several timepoints; save one file per timepoint to analyse it by region"
        )
    with ExitStack() as stack:
        reader: WindowReader
        if info.memmappable:

            def reader(ys: slice, xs: slice) -> np.ndarray:
                return read_tile(path, ys.start, ys.stop, xs.start, xs.stop, limits=limits)

        else:
            tif = stack.enter_context(open_tiff(path))
            series = tif.series[0]
            if series.axes != info.file_axes or tuple(series.shape) != info.file_shape:
                raise InvalidImageError(
                    source,
                    f"stores axes {series.axes!r} {tuple(series.shape)} but is read as "
                    f"{info.file_axes!r} {info.file_shape}; it cannot be read by region",
                )
            reader = _tiff_zarr_reader(series, info.file_axes, source)
        yield FieldRegions(source, info.shape_zcyx, info.dtype, info.calibration, reader)
