"""One image's result as OME-Zarr (NGFF 0.5): a multiscale copy of the input and its labels.

Written beside the other result files (``--format ome-zarr``) as ``image.ome.zarr/``::

    image.ome.zarr/zarr.json            multiscales: axes c, z, y, x (µm), levels 0, 1, ...
    image.ome.zarr/0/...                the input, CZYX, one chunk per plane (≤ 1024² px)
    image.ome.zarr/labels/zarr.json     labels: ["cells"]
    image.ome.zarr/labels/cells/...     the cell labels, ZYX, the same levels and scales

so an NGFF viewer (napari with ``napari-ome-zarr``, ``ome-zarr``, Fiji/MoBIE, neuroglancer)
opens image and labels together, at their physical size. Each level halves Y and X (mean of
2 x 2 pixels for the image, the top-left pixel for labels, so label values stay ids) until
both fit ``MIN_LEVEL_PX``. The cell labels are a YX segmentation of the whole stack: the same
plane is written for every Z, so they overlay every plane.

The files are made in memory and returned as bytes, so every runner publishes them through
the same ``publish_result`` as ``labels.tif`` (a folder or S3 alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: Output forms of a result: ``tiff`` (labels.tif only) or ``ome-zarr`` (also image.ome.zarr/).
OutputFormat = Literal["tiff", "ome-zarr"]
OUTPUT_FORMATS: tuple[str, ...] = ("tiff", "ome-zarr")
#: The OME-Zarr folder's name inside an image's result.
OME_ZARR_NAME = "image.ome.zarr"
#: Name of the cell label image under ``labels/``.
LABELS_NAME = "cells"
#: A level is added while Y or X is larger than this (px).
MIN_LEVEL_PX = 256
#: Largest chunk side in Y and X (px).
CHUNK_PX = 1024
NGFF_VERSION = "0.5"


def halve_image(zcyx: np.ndarray) -> np.ndarray:
    """Mean of each 2 x 2 block in Y and X (a trailing odd row/column is dropped), same dtype.

    >>> halve_image(np.arange(16, dtype="uint8").reshape(1, 1, 4, 4))[0, 0].tolist()
    [[2, 4], [10, 12]]
    """
    z, c, y, x = zcyx.shape
    y2, x2 = max(1, y // 2), max(1, x // 2)
    blocks = zcyx[:, :, : y2 * 2, : x2 * 2].reshape(z, c, y2, 2, x2, 2)
    return blocks.mean(axis=(3, 5), dtype="float64").astype(zcyx.dtype)


def halve_labels(labels: np.ndarray) -> np.ndarray:
    """Every second pixel in Y and X (labels keep their ids).

    >>> halve_labels(np.array([[1, 1, 2, 2], [1, 1, 2, 2]])).tolist()
    [[1, 2]]
    """
    return np.ascontiguousarray(labels[..., ::2, ::2])


def level_count(height: int, width: int) -> int:
    """How many levels a ``height`` x ``width`` (px) image gets: halved until ``MIN_LEVEL_PX``.

    >>> level_count(600, 520), level_count(256, 4000), level_count(1, 9000)
    (3, 5, 1)
    """
    levels = 1
    while max(height, width) > MIN_LEVEL_PX and min(height, width) >= 2:
        height, width, levels = height // 2, width // 2, levels + 1
    return levels


def physical_sizes(pixel_size_um: float | None, z_step_um: float | None) -> tuple[float, float]:
    """``(pixel size, z-step)`` in µm for the NGFF scales: 1.0 where unknown or not positive."""
    pixel = float(pixel_size_um) if pixel_size_um and pixel_size_um > 0 else 1.0
    step = float(z_step_um) if z_step_um and z_step_um > 0 else 1.0
    return pixel, step


def _axes(with_channel: bool) -> list[dict[str, str]]:
    space = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    return ([{"name": "c", "type": "channel"}] if with_channel else []) + space


def _multiscales(
    name: str, n_levels: int, pixel_size_um: float, z_step_um: float, with_channel: bool
) -> list[dict[str, Any]]:
    datasets = []
    for level in range(n_levels):
        factor = float(2**level)
        scale = [z_step_um, pixel_size_um * factor, pixel_size_um * factor]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": ([1.0] if with_channel else []) + scale}
                ],
            }
        )
    return [{"name": name, "axes": _axes(with_channel), "datasets": datasets}]


def channel_range(plane: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of one channel's pixels, the display window; ``(0, 1)`` when empty."""
    return (float(plane.min()), float(plane.max())) if plane.size else (0.0, 1.0)


def omero_metadata(
    ranges: Sequence[tuple[float, float]], channel_names: tuple[str, ...] | None
) -> dict[str, Any]:
    """The ``omero`` rendering settings: per channel its label, colour and ``(min, max)``."""
    colours = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")
    channels = []
    for index, (low, high) in enumerate(ranges):
        channels.append(
            {
                "label": channel_names[index] if channel_names else f"channel {index}",
                "color": colours[index % len(colours)],
                "active": True,
                "window": {"min": low, "max": high, "start": low, "end": high},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color"}}


@dataclass(frozen=True)
class OmeZarrGroups:
    """The groups of an ``image.ome.zarr`` being written: the image root and its cell labels."""

    root: Any
    labels: Any
    cells: Any

    @classmethod
    def create(cls, store: Any) -> OmeZarrGroups:
        """Create the root (Zarr v3), ``labels/`` and ``labels/cells`` groups in ``store``."""
        import zarr  # the formats extra; only needed for this output form

        root = zarr.open_group(store, mode="w", zarr_format=3)
        labels = root.create_group("labels")
        return cls(root, labels, labels.create_group(LABELS_NAME))

    def create_level(
        self,
        level: int,
        shape_czyx: tuple[int, int, int, int],
        labels_yx: tuple[int, int],
        dtype: np.dtype,
    ) -> tuple[Any, Any]:
        """Create level ``level``'s image array (CZYX) and label array (ZYX, uint32).

        Both are chunked by one plane of at most ``CHUNK_PX``² px, taken from the image's
        size; the labels' (Y, X) size ``labels_yx`` can be one more than the image's at a
        halved level (:func:`halve_labels` keeps a trailing odd row, :func:`halve_image` not).
        """
        c, z, height, width = shape_czyx
        chunk = (1, 1, min(CHUNK_PX, height), min(CHUNK_PX, width))
        image = self.root.create_array(
            str(level),
            shape=shape_czyx,
            chunks=chunk,
            dtype=dtype,
            dimension_names=["c", "z", "y", "x"],
        )
        labels = self.cells.create_array(
            str(level),
            shape=(z, *labels_yx),
            chunks=chunk[1:],
            dtype="uint32",
            dimension_names=["z", "y", "x"],
        )
        return image, labels

    def write_metadata(
        self,
        name: str,
        n_levels: int,
        pixel_size_um: float,
        z_step_um: float,
        omero: dict[str, Any],
    ) -> None:
        """The NGFF attributes of image, ``labels`` and ``cells`` (after every level is made)."""
        self.root.attrs["ome"] = {
            "version": NGFF_VERSION,
            "multiscales": _multiscales(name, n_levels, pixel_size_um, z_step_um, True),
            "omero": omero,
        }
        self.labels.attrs["ome"] = {"version": NGFF_VERSION, "labels": [LABELS_NAME]}
        self.cells.attrs["ome"] = {
            "version": NGFF_VERSION,
            "multiscales": _multiscales(LABELS_NAME, n_levels, pixel_size_um, z_step_um, False),
            "image-label": {"version": NGFF_VERSION, "source": {"image": "../../"}},
        }


def ome_zarr_files(
    image_zcyx: np.ndarray,
    labels_yx: np.ndarray,
    *,
    name: str,
    pixel_size_um: float | None,
    z_step_um: float | None,
    channel_names: tuple[str, ...] | None = None,
) -> dict[str, bytes]:
    """The files of ``image.ome.zarr/`` (relative path → bytes), made in memory.

    Parameters
    ----------
    image_zcyx : ndarray of shape (Z, C, Y, X)
        The input stack, written as CZYX (NGFF order); may be a memmap.
    labels_yx : ndarray of shape (Y, X)
        Cell labels, 0 = background; written uint32 as ZYX (the plane repeated for every Z).
    name : str
        The multiscales' name (the image id).
    pixel_size_um, z_step_um : float, optional
        Physical sizes; 1.0 where unknown (NGFF needs a scale), so pixels stand for µm.
    channel_names : tuple of str, optional
        ``omero.channels[].label``.

    Returns
    -------
    dict of str to bytes
        Keys relative to the OME-Zarr folder (``zarr.json``, ``0/c/0/0/0/0``, …).

    Raises
    ------
    ValueError
        When labels and image differ in Y/X size.
    """
    import zarr  # the formats extra; only needed for this output form

    z, c, height, width = image_zcyx.shape
    if labels_yx.shape != (height, width):
        raise ValueError(
            f"labels and image should have the same YX size but are {labels_yx.shape} "
            f"and {(height, width)}"
        )
    pixel, step = physical_sizes(pixel_size_um, z_step_um)
    n_levels = level_count(height, width)
    files: dict[str, Any] = {}  # zarr's Buffer objects, by key
    groups = OmeZarrGroups.create(zarr.storage.MemoryStore(files))
    image = np.asarray(image_zcyx)
    labels = np.broadcast_to(labels_yx.astype("uint32"), (z, height, width))
    for level in range(n_levels):
        image_array, label_array = groups.create_level(
            level, (c, z, *image.shape[2:]), labels.shape[1:], image.dtype
        )
        image_array[:] = image.transpose(1, 0, 2, 3)
        label_array[:] = labels
        image, labels = halve_image(image), halve_labels(labels)
    stack = np.asarray(image_zcyx)
    ranges = [channel_range(stack[:, index]) for index in range(c)]
    groups.write_metadata(name, n_levels, pixel, step, omero_metadata(ranges, channel_names))
    return {key: buffer.to_bytes() for key, buffer in sorted(files.items())}
