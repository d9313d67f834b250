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

#: Colour per cell type, in the order of the type list (as the QC picture: colour-blind safe).
TYPE_COLOURS = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")
#: Tint per channel of the projections (channel 0 grey, 1 magenta, then others).
CHANNEL_TINTS = ((1.0, 1.0, 1.0), (1.0, 0.25, 0.85), (0.3, 1.0, 0.3), (0.3, 0.6, 1.0))
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


def cell_boxes(labels: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """Cell id → bounding box ``(y0, x0, y1, x1)`` (px, end exclusive) of a ``YX`` label image.

    The ids in increasing order, as ``skimage.measure.regionprops``' ``label`` and ``bbox``.
    """
    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        return {}
    ids = labels[rows, cols]
    order = np.argsort(ids, kind="stable")
    ids, rows, cols = ids[order], rows[order], cols[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    y0, y1 = np.minimum.reduceat(rows, starts), np.maximum.reduceat(rows, starts) + 1
    x0, x1 = np.minimum.reduceat(cols, starts), np.maximum.reduceat(cols, starts) + 1
    return {
        int(ids[s]): (int(y0[i]), int(x0[i]), int(y1[i]), int(x1[i])) for i, s in enumerate(starts)
    }


def outline_loops(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """The closed pixel-edge loops around the true pixels of ``mask`` (``YX`` bool).

    Vertices are pixel corners ``(row, col)``: pixel ``(r, c)`` spans corners ``(r, c)`` to
    ``(r + 1, c + 1)``. Every pixel side between a true pixel and a false 4-neighbour (or the
    array's edge) is one edge, directed with the true pixel on its right; the edges are
    chained into loops and runs along one line merged, so each loop lists only its corners.
    The outer loop encloses exactly the true pixels of its region.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    inner = padded[1:-1, 1:-1]
    r, c = np.nonzero(inner)
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(
        keep: np.ndarray, start: tuple[np.ndarray, np.ndarray], end: tuple[np.ndarray, np.ndarray]
    ) -> None:
        for a, b, p, q in zip(
            start[0][keep], start[1][keep], end[0][keep], end[1][keep], strict=True
        ):
            edges.setdefault((int(a), int(b)), []).append((int(p), int(q)))

    add(~padded[r, c + 1], (r, c), (r, c + 1))  # top side: above is false
    add(~padded[r + 1, c + 2], (r, c + 1), (r + 1, c + 1))  # right side
    add(~padded[r + 2, c + 1], (r + 1, c + 1), (r + 1, c))  # bottom side
    add(~padded[r + 1, c], (r + 1, c), (r, c))  # left side
    loops = []
    while edges:
        first = next(iter(edges))
        loop = [first]
        point = first
        while True:
            ends = edges[point]
            nxt = ends.pop()
            if not ends:
                del edges[point]
            if nxt == first:
                break
            loop.append(nxt)
            point = nxt
        loops.append(_corners(loop))
    return loops


def _corners(loop: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The vertices of a closed loop of unit steps where its direction changes."""
    n = len(loop)
    return [
        p
        for i, p in enumerate(loop)
        if (p[0] - loop[i - 1][0], p[1] - loop[i - 1][1])
        != (loop[(i + 1) % n][0] - p[0], loop[(i + 1) % n][1] - p[1])
    ]


def _path_of(corners: list[tuple[int, int]], y0: int, x0: int) -> str:
    """SVG path (``x,y`` image px) of a loop of pixel corners in a crop at (y0, x0)."""
    points = [f"{x0 + c - 0.5:.1f},{y0 + r - 0.5:.1f}" for r, c in corners]
    return "M" + " L".join(points) + " Z"


def cell_outlines(
    labels: np.ndarray, cell_types: dict[int, str], colours: dict[str, str]
) -> list[CellOutline]:
    """Outline polygons of every labelled cell of ``labels`` (``YX``), in image px.

    Each outline runs along the pixel edges around the cell (its longest loop,
    :func:`outline_loops`), so it encloses exactly the cell's pixels; the outline of a cell
    of several pieces is its largest piece's.
    """
    outlines = []
    for cell_id, (y0, x0, y1, x1) in cell_boxes(labels).items():
        loops = outline_loops(labels[y0:y1, x0:x1] == cell_id)
        longest = max(loops, key=_perimeter)
        cell_type = cell_types.get(cell_id, "")
        outlines.append(
            CellOutline(
                cell_id=cell_id,
                cell_type=cell_type,
                colour=colours.get(cell_type, "#ffffff"),
                path=_path_of(longest, y0, x0),
            )
        )
    return outlines


def _perimeter(corners: list[tuple[int, int]]) -> int:
    """Length (px) of a closed loop of axis-parallel steps between ``corners``."""
    return sum(
        abs(p[0] - q[0]) + abs(p[1] - q[1])
        for p, q in zip(corners, corners[1:] + corners[:1], strict=True)
    )


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
