"""Pictures for the image page, in the image's own pixel coordinates (``YX``).

Cell outlines come from ``labels.tif`` as polygons (SVG paths), particles from ``pnps.csv``;
the browser stacks them over per-channel maximum projections of the source image (when it
can be read) and zooms them together. Thumbnails are small copies of ``qc.png``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tifffile
from PIL import Image
from skimage import measure

#: Colour per cell type, in the order of the type list (as the QC picture: colour-blind safe).
TYPE_COLOURS = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")
#: Tint per channel of the projections (channel 0 grey, 1 magenta, then others).
CHANNEL_TINTS = ((1.0, 1.0, 1.0), (1.0, 0.25, 0.85), (0.3, 1.0, 0.3), (0.3, 0.6, 1.0))
#: Polygon simplification tolerance (px): outlines stay within this of the mask edge.
OUTLINE_TOLERANCE_PX = 0.6
#: Percentiles mapped to black and white in projections.
DISPLAY_PERCENTILES = (0.5, 99.8)
#: Longest side (px) of a projection sent to the browser; larger fields are subsampled.
MAX_PROJECTION_SIDE_PX = 2048


@dataclass(frozen=True)
class CellOutline:
    """One cell's outline as an SVG path (image px) and the type colour to draw it in."""

    cell_id: int
    cell_type: str
    colour: str
    path: str


def type_colours(type_names: tuple[str, ...]) -> dict[str, str]:
    """Cell type → colour, in the configured type order."""
    return {name: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, name in enumerate(type_names)}


def read_labels(data: bytes) -> np.ndarray:
    """A ``YX`` label image from ``labels.tif`` bytes (a leading axis of size 1 is dropped)."""
    labels = tifffile.imread(io.BytesIO(data))
    return np.asarray(labels).reshape(labels.shape[-2:])


def _path_of(contour: np.ndarray, y0: int, x0: int) -> str:
    """SVG path of a closed contour given as (row, col) in a padded crop at (y0, x0)."""
    simplified = measure.approximate_polygon(contour, OUTLINE_TOLERANCE_PX)
    points = [f"{x0 + c - 0.5:.1f},{y0 + r - 0.5:.1f}" for r, c in simplified]
    return "M" + " L".join(points) + " Z"


def cell_outlines(
    labels: np.ndarray, cell_types: dict[int, str], colours: dict[str, str]
) -> list[CellOutline]:
    """Outline polygons of every labelled cell of ``labels`` (``YX``), in image px.

    Each contour runs along the pixel edges' midpoints (``find_contours`` at level 0.5 on the
    cell's mask padded by one pixel), so it encloses exactly the cell's pixels.
    """
    outlines = []
    for region in measure.regionprops(labels):
        y0, x0, y1, x1 = region.bbox
        mask = np.pad(region.image, 1).astype(float)
        contours = measure.find_contours(mask, 0.5)
        if not contours:
            continue
        longest = max(contours, key=len)
        cell_type = cell_types.get(int(region.label), "")
        outlines.append(
            CellOutline(
                cell_id=int(region.label),
                cell_type=cell_type,
                colour=colours.get(cell_type, "#ffffff"),
                path=_path_of(longest, y0 - 1, x0 - 1),
            )
        )
    return outlines


def _stretch(plane: np.ndarray) -> np.ndarray:
    low, high = np.percentile(plane, DISPLAY_PERCENTILES)
    if high <= low:
        high = low + 1
    return np.clip((plane.astype(np.float32) - low) / (high - low), 0, 1)


def projection_png(data_zcyx: np.ndarray, channel: int) -> bytes:
    """PNG of one channel's maximum projection over Z, contrast-stretched and tinted.

    Parameters
    ----------
    data_zcyx : ndarray of shape (Z, C, Y, X)
        The source image.
    channel : int
        Index along C; :class:`IndexError` when out of range.
    """
    if not 0 <= channel < data_zcyx.shape[1]:
        raise IndexError(f"channel {channel} out of range 0..{data_zcyx.shape[1] - 1}")
    step = max(1, int(np.ceil(max(data_zcyx.shape[2:]) / MAX_PROJECTION_SIDE_PX)))
    plane = np.asarray(data_zcyx[:, channel, ::step, ::step]).max(axis=0)
    grey = _stretch(plane)
    tint = np.asarray(CHANNEL_TINTS[channel % len(CHANNEL_TINTS)], dtype=np.float32)
    rgb = (grey[..., None] * tint * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def labels_png(labels: np.ndarray, cell_types: dict[int, str], colours: dict[str, str]) -> bytes:
    """A dim picture of the cells filled by type colour, for when no source can be read."""
    lut = np.full((int(labels.max(initial=0)) + 1, 3), 24, dtype=np.uint8)
    for cell_id, cell_type in cell_types.items():
        if 0 < cell_id < len(lut):
            colour = colours.get(cell_type, "#888888").lstrip("#")
            value = np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)]) * 0.35 + 24
            lut[cell_id] = value.astype(np.uint8)
    rgb = lut[labels]
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_jpeg(qc_png: bytes, max_side_px: int = 160) -> bytes:
    """A small JPEG copy of the QC picture (aspect kept): ~4x smaller and faster than PNG."""
    with Image.open(io.BytesIO(qc_png)) as image:
        small = image.convert("RGB")
        small.thumbnail((max_side_px, max_side_px), Image.Resampling.BILINEAR, reducing_gap=2.0)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


def read_table(data: bytes) -> pd.DataFrame:
    """A CSV table (``cells.csv``, ``pnps.csv``) from bytes."""
    return pd.read_csv(io.BytesIO(data))


def id_map_png(labels: np.ndarray) -> bytes:
    """Cell ids as an RGB PNG: ``id = R + 256·G + 65536·B`` per pixel (0 = background).

    The QC editor reads it back with a canvas to know which cell is under the pointer and to
    draw the outlines of edited labels; a lossless PNG keeps every id exact (up to 2²⁴ − 1).
    """
    if labels.ndim != 2:
        raise ValueError(f"labels should be YX (2 axes) but have shape {labels.shape}")
    if labels.max(initial=0) >= 2**24:
        raise ValueError(f"cell ids up to {2**24 - 1} fit an RGB id map, not {labels.max()}")
    ids = labels.astype(np.uint32)
    rgb = np.stack([(ids >> shift) & 0xFF for shift in (0, 8, 16)], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
