"""A reviewer's corrections as pure operations on a label image and a spot table.

Every function returns new arrays and leaves its inputs alone. Labels are ``YX`` integer
images (0 = background, cell ids ≥ 1); spots are float64 arrays of shape (N, 3) holding
``y_px, x_px, multiplicity``; points and polygons are sequences of ``(y, x)`` in pixels of
the same image. Unknown ids, empty drawings and lines that cut nothing raise
:class:`~overnight.errors.AnnotationError`, whose message says what to do.

>>> import numpy as np
>>> labels = np.array([[1, 1, 0, 2, 2]])
>>> merge_cells(labels, keep_id=1, other_id=2).tolist()
[[1, 1, 0, 1, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from overnight.errors import AnnotationError

#: 4-connectivity (edge neighbours): the connectivity cells are checked and split with.
FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)

Point = tuple[float, float]


def _check_cell(labels: np.ndarray, cell_id: int) -> None:
    if cell_id <= 0 or not np.any(labels == cell_id):
        raise AnnotationError(f"cell {cell_id} is not in the label image; reload the image")


def next_cell_id(labels: np.ndarray) -> int:
    """The smallest id above every id in ``labels`` (1 for an empty image)."""
    return int(labels.max(initial=0)) + 1


def delete_cell(labels: np.ndarray, cell_id: int) -> np.ndarray:
    """``labels`` with cell ``cell_id`` turned into background."""
    _check_cell(labels, cell_id)
    return np.where(labels == cell_id, 0, labels).astype(labels.dtype)


def merge_cells(labels: np.ndarray, keep_id: int, other_id: int) -> np.ndarray:
    """``labels`` with cell ``other_id`` relabelled ``keep_id`` (one cell, one id).

    Background pixels between the two are not filled: a merge of cells that do not touch
    yields one id on two regions, as drawn.
    """
    if keep_id == other_id:
        raise AnnotationError(f"merging cell {keep_id} with itself; pick two different cells")
    _check_cell(labels, keep_id)
    _check_cell(labels, other_id)
    return np.where(labels == other_id, keep_id, labels).astype(labels.dtype)


def line_pixels(y0: int, x0: int, y1: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (px) of the 8-connected line from ``(y0, x0)`` to ``(y1, x1)``.

    One pixel per step along the longer axis, the other coordinate rounded half away from
    the start (Bresenham's line, as ``skimage.draw.line``).
    """
    steps = max(abs(y1 - y0), abs(x1 - x0))
    t = np.arange(steps + 1)
    if steps == 0:
        return np.array([y0]), np.array([x0])

    def along(a: int, b: int) -> np.ndarray:
        exact = a * steps + (b - a) * t  # the coordinate times `steps`
        return (
            np.floor_divide(2 * exact + steps, 2 * steps)
            if b >= a
            else -np.floor_divide(-2 * exact + steps, 2 * steps)
        )

    return along(y0, y1), along(x0, x1)


def label4(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of ``mask`` (``YX`` bool): labels 1..n in raster order, and n.

    Each pixel takes the smallest raster index among its 4-neighbours until nothing changes
    (with pointer jumping), then the indices are renumbered (as ``scipy.ndimage.label``).
    """
    mask = np.asarray(mask, bool)
    big = np.iinfo(np.int64).max
    index = np.where(mask, np.arange(mask.size).reshape(mask.shape), big)
    while True:
        padded = np.pad(index, 1, constant_values=big)
        low = np.minimum.reduce(
            [index, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        )
        low = np.where(mask, low, big)
        flat = low.ravel()
        inside = flat != big
        flat[inside] = np.minimum(flat[inside], flat[flat[inside]])  # pointer jumping
        if np.array_equal(low, index):
            break
        index = low
    roots, inverse = np.unique(index, return_inverse=True)
    count = int(np.sum(roots != big))
    labels = np.where(mask, inverse.reshape(mask.shape) + 1, 0)
    return labels, count


def dilate4(values: np.ndarray) -> np.ndarray:
    """Each pixel's maximum over itself and its 4-neighbours (``YX``; the border repeats)."""
    padded = np.pad(values, 1, mode="edge")
    return np.maximum.reduce(
        [values, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
    )


def inside_polygon(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixels of ``shape`` whose centre lies inside the polygon (``rows``, ``cols`` in px).

    Even-odd rule on a horizontal ray from each pixel centre, over the polygon's bounding box.
    """
    mask = np.zeros(shape, bool)
    top, bottom = max(int(np.floor(rows.min())), 0), min(int(np.ceil(rows.max())) + 1, shape[0])
    left, right = max(int(np.floor(cols.min())), 0), min(int(np.ceil(cols.max())) + 1, shape[1])
    if top >= bottom or left >= right:
        return mask
    yy, xx = np.mgrid[top:bottom, left:right].astype(float)
    inside = np.zeros(yy.shape, bool)
    for (ya, xa), (yb, xb) in zip(
        zip(rows, cols, strict=True),
        zip(np.roll(rows, -1), np.roll(cols, -1), strict=True),
        strict=True,
    ):
        if ya == yb:
            continue
        crosses = (ya > yy) != (yb > yy)
        x_cross = xa + (yy - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (xx < x_cross)
    mask[top:bottom, left:right] = inside
    return mask


def polyline_mask(shape: tuple[int, int], points: Sequence[Point]) -> np.ndarray:
    """Pixels on the 8-connected line through ``points`` (y, x px), clipped to ``shape``."""
    if len(points) < 2:
        raise AnnotationError("a line needs at least two points")
    mask = np.zeros(shape, bool)
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:], strict=True):
        rr, cc = line_pixels(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
        keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        mask[rr[keep], cc[keep]] = True
    return mask


def _bounding_box(mask: np.ndarray, margin_px: int) -> tuple[slice, slice]:
    """The (Y, X) slices of ``mask``'s true pixels, widened by ``margin_px`` within the image."""
    rows, cols = np.nonzero(mask)
    top, left = max(int(rows.min()) - margin_px, 0), max(int(cols.min()) - margin_px, 0)
    bottom = min(int(rows.max()) + margin_px + 1, mask.shape[0])
    right = min(int(cols.max()) + margin_px + 1, mask.shape[1])
    return slice(top, bottom), slice(left, right)


def _grow_into(parts: np.ndarray, todo: np.ndarray) -> np.ndarray:
    """Give each ``todo`` pixel the id of a 4-neighbouring part, until none is left.

    Every pixel joins a part it touches by an edge, so the parts stay 4-connected.
    """
    parts = parts.copy()
    todo = todo.copy()
    while np.any(todo):
        grown = dilate4(parts)
        take = todo & (parts == 0) & (grown > 0)
        if not np.any(take):
            break
        parts[take] = grown[take]
        todo &= ~take
    return parts


def split_cell(labels: np.ndarray, cell_id: int, line: Sequence[Point]) -> tuple[np.ndarray, int]:
    """Cut cell ``cell_id`` in two along ``line``; return the labels and the new part's id.

    The line's pixels inside the cell separate it into 4-connected parts. The largest part
    keeps ``cell_id``, the second gets a new id (:func:`next_cell_id`); the line's pixels and
    any smaller slivers join a 4-neighbouring part, so both parts stay 4-connected and the
    cell's area is kept.

    Raises
    ------
    AnnotationError
        When the cell is unknown or the line does not cross it from edge to edge.
    """
    _check_cell(labels, cell_id)
    box = _bounding_box(labels == cell_id, margin_px=0)  # work on the cell's box only
    cell = labels[box] == cell_id
    cut = polyline_mask(labels.shape, line)[box] & cell
    pieces, count = label4(cell & ~cut)
    if count < 2:
        raise AnnotationError(
            f"the line does not cut cell {cell_id} in two; draw it across the whole cell"
        )
    sizes = np.bincount(pieces.ravel())[1:]
    largest, second = (np.argsort(sizes)[::-1][:2] + 1).tolist()
    new_id = next_cell_id(labels)
    parts = np.zeros(cell.shape, np.int64)
    parts[pieces == largest] = cell_id
    parts[pieces == second] = new_id
    parts = _grow_into(parts, cell & (parts == 0))
    out = labels.astype(np.promote_types(labels.dtype, np.min_scalar_type(new_id)), copy=True)
    out[box][cell] = parts[cell]
    return out, new_id


def polygon_mask(shape: tuple[int, int], polygon: Sequence[Point]) -> np.ndarray:
    """Pixels inside (and on) the polygon with vertices ``polygon`` (y, x px)."""
    if len(polygon) < 3:
        raise AnnotationError("a polygon needs at least three points")
    rows = np.array([p[0] for p in polygon], float)
    cols = np.array([p[1] for p in polygon], float)
    mask = inside_polygon(shape, rows, cols)
    corners = [(float(r), float(c)) for r, c in zip(np.round(rows), np.round(cols), strict=True)]
    return mask | polyline_mask(shape, [*corners, corners[0]])


def brush_mask(shape: tuple[int, int], stroke: Sequence[Point], radius_px: float) -> np.ndarray:
    """Pixels within ``radius_px`` of the stroke through ``stroke`` (y, x px): a round brush."""
    if not stroke:
        raise AnnotationError("a brush stroke needs at least one point")
    if not 0 < radius_px <= 200:
        raise AnnotationError(f"brush radius {radius_px} px should be in (0, 200]")
    # a one-point stroke (a click) is a line from the point to itself
    centre = polyline_mask(shape, [*stroke, stroke[-1]] if len(stroke) == 1 else stroke)
    if not np.any(centre):
        raise AnnotationError("the brush stroke lies outside the image")
    box = _bounding_box(centre, margin_px=int(np.ceil(radius_px)) + 1)
    mask = np.zeros(shape, bool)
    mask[box] = within_radius(centre[box], radius_px)
    return mask


def within_radius(centre: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels (``YX`` bool) within ``radius_px`` (Euclidean, px) of a true pixel of ``centre``.

    A disc stamped on every true pixel (as ``scipy.ndimage.distance_transform_edt(~centre)
    <= radius_px``).
    """
    reach = int(np.floor(radius_px))
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    disc = np.sqrt(dy * dy + dx * dx) <= radius_px
    padded = np.zeros((centre.shape[0] + 2 * reach, centre.shape[1] + 2 * reach), bool)
    for r, c in zip(*np.nonzero(centre), strict=True):
        padded[r : r + 2 * reach + 1, c : c + 2 * reach + 1] |= disc
    return padded[reach : reach + centre.shape[0], reach : reach + centre.shape[1]]


def draw_cell(
    labels: np.ndarray, mask: np.ndarray, *, overwrite: bool = False
) -> tuple[np.ndarray, int]:
    """Add a cell on the pixels of ``mask`` (a polygon or brush mask); return labels and its id.

    Only background pixels are painted unless ``overwrite``; when that leaves several
    pieces the largest 4-connected one becomes the cell (a cell is one region).
    """
    if mask.shape != labels.shape:
        raise AnnotationError(
            f"drawing and labels should have the same shape but are {mask.shape} and {labels.shape}"
        )
    paint = mask if overwrite else mask & (labels == 0)
    pieces, count = label4(paint)
    if count == 0:
        raise AnnotationError("the drawing covers no free pixel; draw over the background")
    largest = int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1
    new_id = next_cell_id(labels)
    out = labels.astype(np.promote_types(labels.dtype, np.min_scalar_type(new_id)), copy=True)
    out[pieces == largest] = new_id
    return out, new_id


def set_cell_type(
    labels: np.ndarray, cell_types: dict[int, str], cell_id: int, type_name: str
) -> dict[int, str]:
    """``cell_types`` with cell ``cell_id`` of type ``type_name`` (a new dict)."""
    _check_cell(labels, cell_id)
    name = type_name.strip()
    if not name:
        raise AnnotationError("a cell type needs a name")
    return {**cell_types, cell_id: name}


def prune_cell_types(labels: np.ndarray, cell_types: dict[int, str]) -> dict[int, str]:
    """``cell_types`` without the cells no longer in ``labels`` (after a delete or merge)."""
    present = set(np.unique(labels).tolist())
    return {cell_id: name for cell_id, name in cell_types.items() if cell_id in present}


def _check_point(shape: tuple[int, ...], y: float, x: float) -> None:
    if not (-0.5 <= y <= shape[0] - 0.5 and -0.5 <= x <= shape[1] - 0.5):
        raise AnnotationError(f"({y:g}, {x:g}) px lies outside the {shape[0]}×{shape[1]} image")


def add_spot(
    spots: np.ndarray, y: float, x: float, shape: tuple[int, int], multiplicity: int = 1
) -> np.ndarray:
    """``spots`` with a spot of ``multiplicity`` particles at (y, x) px appended."""
    _check_point(shape, y, x)
    if multiplicity < 1:
        raise AnnotationError(f"a spot holds at least one particle, not {multiplicity}")
    row = np.array([[y, x, multiplicity]], np.float64)
    return np.concatenate([np.asarray(spots, np.float64).reshape(-1, 3), row])


def nearest_spot(spots: np.ndarray, y: float, x: float, radius_px: float) -> int:
    """Index of the spot nearest (y, x) px within ``radius_px``; AnnotationError if none."""
    if len(spots):
        distance = np.hypot(spots[:, 0] - y, spots[:, 1] - x)
        index = int(np.argmin(distance))
        if distance[index] <= radius_px:
            return index
    raise AnnotationError(f"no particle within {radius_px:g} px of ({y:g}, {x:g}); click on one")


def remove_spot(spots: np.ndarray, y: float, x: float, radius_px: float = 4.0) -> np.ndarray:
    """``spots`` without the spot nearest (y, x) px within ``radius_px``."""
    return np.delete(spots, nearest_spot(spots, y, x, radius_px), axis=0)


def set_spot_multiplicity(
    spots: np.ndarray, y: float, x: float, multiplicity: int, radius_px: float = 4.0
) -> np.ndarray:
    """``spots`` with the spot nearest (y, x) px holding ``multiplicity`` (≥ 1) particles."""
    if not 1 <= multiplicity <= 99:
        raise AnnotationError(f"multiplicity {multiplicity} should be 1–99")
    out = np.array(spots, np.float64, copy=True)
    out[nearest_spot(spots, y, x, radius_px), 2] = multiplicity
    return out
