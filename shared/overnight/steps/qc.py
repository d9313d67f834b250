"""The QC picture a person looks at: outlines coloured by type, particles, counts.

Drawn with numpy and Pillow at the picture's own size (a plotting library cost ~0.5 s a
field, more than the rest of the post-processing together).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from overnight.lazy import lazy_module
from overnight.steps.cells import normalise_intensity

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from PIL import Image, ImageDraw, ImageFont
    from skimage import segmentation
else:
    Image = lazy_module("PIL.Image")
    ImageDraw = lazy_module("PIL.ImageDraw")
    ImageFont = lazy_module("PIL.ImageFont")
    segmentation = lazy_module("skimage.segmentation")

#: Colour per cell type, in the order the type list is configured (colour-blind safe).
TYPE_COLOURS = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#F0E442", "#D55E00")
#: Particles on a cell (filled dots) and on glass (hollow circles).
ON_CELL_COLOUR = (255, 48, 48)
ON_GLASS_COLOUR = (255, 255, 0)
#: Heights of the title strip above the image and of each legend row below it (px).
TITLE_PX = 14
LEGEND_PX = 16
#: Legend geometry (px): left margin, mark width before the text, gap between items.
LEGEND_MARGIN_PX = 4
LEGEND_MARK_PX = 16
LEGEND_GAP_PX = 14
#: Pictures of fields smaller than this (px, longer side) are enlarged by a whole factor, so a
#: small scene or crop is not a thumbnail under its own legend.
MIN_SIDE_PX = 256
#: zlib level of the PNG: 1 writes ~5x faster than the default 6 for ~15 % more bytes.
PNG_COMPRESS_LEVEL = 1


def _rgb(colour: str) -> tuple[int, int, int]:
    """``(r, g, b)`` of a ``#rrggbb`` colour."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _paint_dots(rgb: np.ndarray, y: np.ndarray, x: np.ndarray, colour: tuple[int, ...]) -> None:
    """Paint a 3×3 px plus-shaped dot at each (``y``, ``x``) of ``rgb`` (in place)."""
    ny, nx = rgb.shape[:2]
    cy, cx = np.rint(y).astype(np.int64), np.rint(x).astype(np.int64)
    for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
        py, px = cy + dy, cx + dx
        inside = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
        rgb[py[inside], px[inside]] = colour


def display_factors(
    shape_yx: tuple[int, int], max_side_px: int, min_side_px: int
) -> tuple[int, int]:
    """Whole factors ``(down, up)`` that bring a ``YX`` field's longer side into range (px).

    ``down`` keeps every ``down``-th pixel of a field longer than ``max_side_px``; ``up``
    repeats each pixel of one shorter than ``min_side_px`` (never past ``max_side_px``).

    >>> display_factors((2048, 1024), 1024, 256), display_factors((32, 48), 1024, 256)
    ((2, 1), (1, 6))
    """
    longest = max(int(shape_yx[0]), int(shape_yx[1]), 1)
    down = max(1, int(np.ceil(longest / max_side_px)))
    up = 1
    if longest < min_side_px:
        up = max(1, min(int(np.ceil(min_side_px / longest)), max_side_px // longest))
    return down, up


def legend_layout(item_widths_px: Sequence[float], width_px: float) -> list[list[int]]:
    """Which legend items go on which row so that no row is wider than the picture.

    Parameters
    ----------
    item_widths_px : sequence of float
        Width of each item (mark and text, px), in legend order.
    width_px : float
        Width of the picture (px).

    Returns
    -------
    list of list of int
        Item indices per row, in order; an item wider than the picture gets a row of its own.

    >>> legend_layout([60, 60, 60], 150)
    [[0, 1], [2]]
    """
    available = width_px - LEGEND_MARGIN_PX
    rows: list[list[int]] = [[]]
    used = 0.0
    for index, item in enumerate(item_widths_px):
        needed = item if not rows[-1] else used + LEGEND_GAP_PX + item
        if rows[-1] and needed > available:
            rows.append([])
            needed = item
        rows[-1].append(index)
        used = needed
    return rows


def render_qc_png(
    cell_image: np.ndarray,
    labels: np.ndarray,
    cells: pd.DataFrame,
    pnps: pd.DataFrame,
    type_names: tuple[str, ...],
    title: str = "",
    max_side_px: int = 1024,
    min_side_px: int = MIN_SIDE_PX,
) -> bytes:
    """PNG of the cell image (``YX``) with outlines by type, particles and per-cell counts.

    Particles on a cell are red dots, particles on glass hollow yellow circles; each cell's
    count is written at its centre; the legend counts particles (a row's ``multiplicity``).
    Large fields are shown downsampled to ``max_side_px``, small ones enlarged (nearest
    pixel, :func:`display_factors`) to at least ``min_side_px``.
    """
    down, up = display_factors(cell_image.shape, max_side_px, min_side_px)
    grey = np.clip(normalise_intensity(cell_image[::down, ::down]), 0, 1)
    grey = grey.repeat(up, axis=0).repeat(up, axis=1)
    rgb = np.repeat((grey * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    small_labels = labels[::down, ::down].repeat(up, axis=0).repeat(up, axis=1)

    def shown(position: np.ndarray) -> np.ndarray:
        """Input px → picture px (the centre of an enlarged pixel's block)."""
        return (np.asarray(position, float) / down + 0.5) * up - 0.5

    colour_of = {name: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, name in enumerate(type_names)}
    type_of = dict(zip(cells["cell_id"].to_numpy(), cells["cell_type"].to_numpy(), strict=True))
    ys, xs = np.nonzero(segmentation.find_boundaries(small_labels, mode="inner"))
    boundary_ids = small_labels[ys, xs]
    for name, colour in colour_of.items():
        ids = [cell_id for cell_id, cell_type in type_of.items() if cell_type == name]
        edge = np.isin(boundary_ids, ids)
        rgb[ys[edge], xs[edge]] = _rgb(colour)

    on_cell = (pnps["cell_id"] > 0).to_numpy()
    particles = pnps["multiplicity"] if "multiplicity" in pnps else pd.Series(1, index=pnps.index)
    py, px = shown(pnps["y"].to_numpy(float)), shown(pnps["x"].to_numpy(float))
    _paint_dots(rgb, py[on_cell], px[on_cell], ON_CELL_COLOUR)

    font = ImageFont.load_default()
    legend: list[tuple[str, tuple[int, int, int], str]] = [
        (f"{n} ({int((cells['cell_type'] == n).sum())})", _rgb(c), "line")
        for n, c in colour_of.items()
    ]
    legend.append((f"PNP on cell ({int(particles[on_cell].sum())})", ON_CELL_COLOUR, "dot"))
    legend.append((f"PNP on glass ({int(particles[~on_cell].sum())})", ON_GLASS_COLOUR, "ring"))
    top = TITLE_PX if title else 0
    height, width = rgb.shape[:2]
    # wrapped into rows: on a 256 px field one row cut the legend off
    rows = legend_layout([LEGEND_MARK_PX + font.getlength(item[0]) for item in legend], width)
    canvas = Image.new("RGB", (width, top + height + LEGEND_PX * len(rows)), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb), (0, top))
    draw = ImageDraw.Draw(canvas)
    for y, x in zip(py[~on_cell], px[~on_cell], strict=True):
        draw.ellipse((x - 3, top + y - 3, x + 3, top + y + 3), outline=ON_GLASS_COLOUR)
    for row in cells.itertuples():
        text = str(row.pnp_count)
        centre = (float(shown(row.x)), top + float(shown(row.y)))
        box = draw.textbbox(centre, text, font=font, anchor="mm")
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 1, box[3] + 1), fill=(40, 40, 40))
        draw.text(centre, text, fill=(255, 255, 255), font=font, anchor="mm")
    if title:
        draw.text((width / 2, TITLE_PX / 2), title, fill=(0, 0, 0), font=font, anchor="mm")

    for row_number, row in enumerate(rows):
        x0 = float(LEGEND_MARGIN_PX)
        y0 = top + height + LEGEND_PX * row_number + LEGEND_PX / 2
        for label, mark_colour, mark in (legend[i] for i in row):
            if mark == "line":
                draw.line((x0, y0, x0 + 12, y0), fill=mark_colour, width=2)
            elif mark == "dot":
                draw.ellipse((x0 + 3, y0 - 3, x0 + 9, y0 + 3), fill=mark_colour)
            else:
                draw.ellipse((x0 + 2, y0 - 4, x0 + 10, y0 + 4), outline=(90, 90, 0), width=2)
            draw.text((x0 + LEGEND_MARK_PX, y0), label, fill=(0, 0, 0), font=font, anchor="lm")
            x0 += LEGEND_MARK_PX + draw.textlength(label, font=font) + LEGEND_GAP_PX
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
