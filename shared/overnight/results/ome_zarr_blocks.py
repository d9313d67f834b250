"""``image.ome.zarr/`` of a field too large to hold whole, written window by window on disk.

A field analysed in blocks (:mod:`overnight.pipeline.block_run`) has neither its input nor its
labels in memory, so :func:`~overnight.results.ome_zarr.ome_zarr_files` cannot make its
OME-Zarr. :func:`write_ome_zarr_by_window` writes the same files (same arrays, chunks,
levels and NGFF metadata, made by :class:`~overnight.results.ome_zarr.OmeZarrGroups`) into a
folder on disk instead:

- level 0 of the image from windows of the input read by region (every z-slice and channel of
  a ``window_px``² window at a time), and of the labels from windows of the stitched
  ``labels.tif`` (:func:`tiff_window_reader`);
- each further level from windows of the level below, read back from the folder: the image's
  2 x 2 means (:func:`~overnight.results.ome_zarr.halve_image`) and the labels' every second
  pixel are local, so a window of a level is the whole field's window;
- the channels' display ranges (``omero``) as the minimum and maximum over the windows.

Peak memory is a few windows and chunks, not the field. The folder is then published file by
file (:class:`FolderFiles`): ``publish_result`` takes each file's bytes when it hashes and
writes it, so only one chunk's bytes are held at a time.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from overnight.results.ome_zarr import (
    CHUNK_PX,
    OmeZarrGroups,
    channel_range,
    halve_image,
    halve_labels,
    level_count,
    omero_metadata,
    physical_sizes,
)

#: Reads the ``(Y, X)`` window of a field: ``ZCYX`` for the image, ``YX`` for the labels.
WindowReader = Callable[[slice, slice], np.ndarray]


def windows(height: int, width: int, side_px: int) -> Iterator[tuple[slice, slice]]:
    """The ``side_px``² windows that tile a ``height`` x ``width`` plane, row by row.

    >>> [(y.start, y.stop, x.start, x.stop) for y, x in windows(3, 5, 2)]
    [(0, 2, 0, 2), (0, 2, 2, 4), (0, 2, 4, 5), (2, 3, 0, 2), (2, 3, 2, 4), (2, 3, 4, 5)]
    """
    for y0 in range(0, height, side_px):
        for x0 in range(0, width, side_px):
            yield slice(y0, min(y0 + side_px, height)), slice(x0, min(x0 + side_px, width))


def window_side_px(limit_px: int) -> int:
    """The largest power of two ≤ ``limit_px`` and ≤ ``CHUNK_PX``: windows then tile chunks.

    >>> window_side_px(640), window_side_px(5000), window_side_px(1)
    (512, 1024, 1)
    """
    side = 1
    while side * 2 <= min(limit_px, CHUNK_PX):
        side *= 2
    return side


def tiff_window_reader(data: bytes) -> WindowReader:
    """A ``YX`` window reader of a one-plane (tiled) TIFF in ``data``: decodes only its tiles."""
    import tifffile
    import zarr

    tif = tifffile.TiffFile(io.BytesIO(data))
    array = zarr.open_array(tif.series[0].aszarr(), mode="r")

    def read(ys: slice, xs: slice) -> np.ndarray:
        return np.asarray(array[ys, xs])

    return read


def write_ome_zarr_by_window(
    folder: Path,
    read_image: WindowReader,
    read_labels: WindowReader,
    shape_zcyx: tuple[int, int, int, int],
    dtype: np.dtype,
    *,
    name: str,
    pixel_size_um: float | None,
    z_step_um: float | None,
    channel_names: tuple[str, ...] | None = None,
    window_px: int = CHUNK_PX,
) -> None:
    """Write ``image.ome.zarr`` of a ``shape_zcyx`` field into ``folder`` one window at a time.

    The files are those :func:`~overnight.results.ome_zarr.ome_zarr_files` makes of the whole
    image and labels (same keys, same bytes).

    Parameters
    ----------
    folder : Path
        An empty or missing folder; becomes the OME-Zarr root.
    read_image : callable
        ``(ys, xs)`` → that window of every z-slice and channel, ``ZCYX`` of ``dtype``.
    read_labels : callable
        ``(ys, xs)`` → that window of the cell labels, ``YX`` (0 = background).
    shape_zcyx : tuple of int
        The field's (Z, C, Y, X) size.
    name, pixel_size_um, z_step_um, channel_names
        As :func:`~overnight.results.ome_zarr.ome_zarr_files` takes them.
    window_px : int
        Largest window side (px) read at a time; rounded down to a power of two ≤ ``CHUNK_PX``.
    """
    import zarr  # the formats extra; only needed for this output form

    z, c, height, width = shape_zcyx
    side = window_side_px(window_px)
    pixel, step = physical_sizes(pixel_size_um, z_step_um)
    n_levels = level_count(height, width)
    groups = OmeZarrGroups.create(zarr.storage.LocalStore(str(folder)))
    image, labels = groups.create_level(0, (c, z, height, width), (height, width), dtype)
    ranges = [(np.inf, -np.inf)] * c
    for ys, xs in windows(height, width, side):
        window = read_image(ys, xs)
        image[:, :, ys, xs] = window.transpose(1, 0, 2, 3)
        ranges = [_widen(r, channel_range(window[:, i])) for i, r in enumerate(ranges)]
        plane = np.asarray(read_labels(ys, xs)).astype("uint32")
        labels[:, ys, xs] = np.broadcast_to(plane, (z, *plane.shape))
    for level in range(1, n_levels):
        image, labels = _next_level(groups, level, image, labels, max(1, side // 2))
    groups.write_metadata(name, n_levels, pixel, step, omero_metadata(ranges, channel_names))


def _widen(low_high: tuple[float, float], other: tuple[float, float]) -> tuple[float, float]:
    return min(low_high[0], other[0]), max(low_high[1], other[1])


def _next_level(
    groups: OmeZarrGroups, level: int, image: Any, labels: Any, side: int
) -> tuple[Any, Any]:
    """Level ``level`` from the level below (``image``, ``labels`` arrays), window by window."""
    c, z, height, width = image.shape
    shape = (c, z, max(1, height // 2), max(1, width // 2))  # as halve_image
    label_yx = (-(-labels.shape[1] // 2), -(-labels.shape[2] // 2))  # as halve_labels
    next_image, next_labels = groups.create_level(level, shape, label_yx, image.dtype)
    for ys, xs in windows(*shape[2:], side):
        below = image[:, :, 2 * ys.start : 2 * ys.stop, 2 * xs.start : 2 * xs.stop]
        next_image[:, :, ys, xs] = halve_image(np.asarray(below))
    for ys, xs in windows(*label_yx, side):
        plane = halve_labels(labels[0, 2 * ys.start : 2 * ys.stop, 2 * xs.start : 2 * xs.stop])
        next_labels[:, ys, xs] = np.broadcast_to(plane, (z, *plane.shape))
    return next_image, next_labels


class FolderFiles(Mapping[str, bytes]):
    """The files under ``folder`` as ``prefix/relative/path`` → bytes, each read when asked.

    So a folder written on disk is published through ``publish_result`` (which takes a
    mapping of names to bytes) without holding all of it in memory. ``beside`` are files
    already in memory published with them (``labels.tif``, the tables); a name in both is
    ``beside``'s.
    """

    def __init__(
        self, folder: Path, prefix: str, beside: Mapping[str, bytes] | None = None
    ) -> None:
        self.beside = dict(beside or {})
        self._paths = {
            f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}": path
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        self._names = sorted(set(self._paths) | set(self.beside))

    def __getitem__(self, key: str) -> bytes:
        if key in self.beside:
            return self.beside[key]
        return self._paths[key].read_bytes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
