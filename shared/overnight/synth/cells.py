"""Cell outlines and their instance labels for a synthetic digital-cytometry field.

A cell is a star-convex outline: a radius per angle, made of an area-preserving ellipse
(elongation) times a few low Fourier harmonics (irregularity). Cells are placed one at a time,
either free (at least ``gap_px`` from every other cell) or attached to a placed cell so that the
two outlines overlap slightly. Where outlines overlap, each pixel goes to the cell whose outline
it lies deeper inside (smaller ``distance / radius``), which gives the two cells one shared,
gap-free boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from overnight.synth.ranges import CellTypeSpec

logger = logging.getLogger(__name__)

#: Fourier modes that make an outline irregular (mode 2 would elongate it, which ``aspect`` does).
_HARMONIC_MODES = (3, 4, 5, 6)
#: Cells stay this far (px) inside the field, so every mask is whole.
_BORDER_PX = 2.0
#: Placement attempts per cell before it is left out.
_FREE_TRIES = 80
_ATTACH_TRIES = 12


@dataclass(frozen=True)
class CellOutline:
    """One cell's outline: centre (px, ``y, x``) and radius per angle (px).

    ``radius_px`` is half the equivalent diameter; ``aspect`` (≥ 1) stretches it along
    ``orientation_rad`` at constant area; ``harmonics`` holds (relative amplitude, phase) of
    the modes in ``_HARMONIC_MODES``.
    """

    cell_type: str
    center_yx: tuple[float, float]
    radius_px: float
    aspect: float
    orientation_rad: float
    harmonics: tuple[tuple[float, float], ...]

    def radius_at(self, theta: np.ndarray) -> np.ndarray:
        """Outline radius (px) at angles ``theta`` (rad, ``arctan2(dy, dx)``)."""
        t = theta - self.orientation_rad
        ellipse = 1.0 / np.sqrt(np.cos(t) ** 2 / self.aspect + self.aspect * np.sin(t) ** 2)
        wobble = np.ones_like(theta)
        for mode, (amplitude, phase) in zip(_HARMONIC_MODES, self.harmonics, strict=True):
            wobble = wobble + amplitude * np.cos(mode * theta + phase)
        return self.radius_px * ellipse * wobble

    @property
    def max_radius_px(self) -> float:
        """An upper bound of :meth:`radius_at` (px)."""
        wobble = 1.0 + sum(abs(a) for a, _ in self.harmonics)
        return self.radius_px * np.sqrt(self.aspect) * wobble


@dataclass(frozen=True)
class CellLayout:
    """Placed cells: ``labels`` (``YX`` uint32, 0 = background) and ``outlines[id - 1]``.

    ``labels`` covers the field plus ``pad_px`` on every side, where cells that cross the
    field's edge continue; outline centres are in the same (padded) coordinates.
    """

    labels: np.ndarray
    outlines: tuple[CellOutline, ...]
    pad_px: int = 0


def draw_outline(rng: np.random.Generator, spec: CellTypeSpec) -> CellOutline:
    """Draw one outline of type ``spec`` centred at the origin."""
    diameter = rng.uniform(*spec.diameter_px)
    aspect = rng.uniform(1.0, spec.max_aspect)
    amplitudes = spec.irregularity * np.abs(rng.standard_normal(len(_HARMONIC_MODES)))
    amplitudes *= 3.0 / np.asarray(_HARMONIC_MODES)  # finer lobes are smaller
    amplitudes *= min(1.0, 0.3 / max(amplitudes.sum(), 1e-9))  # keep the radius positive
    phases = rng.uniform(0.0, 2 * np.pi, len(_HARMONIC_MODES))
    return CellOutline(
        cell_type=spec.name,
        center_yx=(0.0, 0.0),
        radius_px=diameter / 2,
        aspect=aspect,
        orientation_rad=rng.uniform(0.0, np.pi),
        harmonics=tuple((float(a), float(p)) for a, p in zip(amplitudes, phases, strict=True)),
    )


def layout_cells(
    rng: np.random.Generator,
    shape_yx: tuple[int, int],
    n_cells: int,
    specs: Sequence[CellTypeSpec],
    touching_fraction: float,
    gap_px: float,
    border_fraction: float = 0.0,
) -> CellLayout:
    """Place up to ``n_cells`` cells, about ``touching_fraction`` of them touching a neighbour.

    Cells are placed on the field plus a margin wide enough for any cell, so that cells
    crossing the field's edge are whole; :func:`crop_layout` cuts the field out.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape_yx : tuple of int
        Field size (px).
    n_cells : int
        Cells to place; fewer are placed when the field is full.
    specs : sequence of CellTypeSpec
        Cell types, drawn with probability proportional to ``fraction``.
    touching_fraction : float
        Target fraction of cells that share a boundary with another cell.
    gap_px : float
        Smallest distance (px) between cells that do not touch.
    border_fraction : float
        Chance that a cell placed on its own may cross the field's edge (its centre stays
        inside the field); other cells lie wholly inside.

    Returns
    -------
    CellLayout
        Labels ``1..n`` (each one 4-connected region) on the padded field and the outlines.
    """
    widest = max(s.diameter_px[1] / 2 * np.sqrt(s.max_aspect) * 1.3 for s in specs)
    pad_px = int(np.ceil(widest + gap_px + _BORDER_PX)) + 1
    canvas = (shape_yx[0] + 2 * pad_px, shape_yx[1] + 2 * pad_px)
    labels = np.zeros(canvas, np.uint32)
    depth = np.full(canvas, np.inf, np.float32)  # distance / radius of the owning cell
    fractions = np.array([s.fraction for s in specs], float)
    type_index = rng.choice(len(specs), size=n_cells, p=fractions / fractions.sum())
    target_touching = round(touching_fraction * n_cells)
    outlines: list[CellOutline] = []
    touching: set[int] = set()
    for index in type_index:
        outline = draw_outline(rng, specs[index])
        new_id = len(outlines) + 1
        placed, partner = None, 0
        if outlines and len(touching) < target_touching:
            placed, partner = _attach(
                rng, outline, outlines, touching, target_touching, labels, depth, gap_px, pad_px
            )
        if placed is None:
            may_cross = bool(rng.random() < border_fraction)
            placed = _place_free(rng, outline, new_id, labels, depth, gap_px, pad_px, may_cross)
        if placed is None:
            logger.debug("field full: placed %d of %d cells", len(outlines), n_cells)
            continue
        outlines.append(placed)
        if partner:
            touching.update((partner, new_id))
    _keep_largest_parts(labels)
    return CellLayout(labels=labels, outlines=tuple(outlines), pad_px=pad_px)


def crop_layout(layout: CellLayout) -> tuple[CellLayout, np.ndarray]:
    """Cut the field out of a padded layout and renumber the cells seen in it ``1..n``.

    Returns the field's layout (``pad_px`` 0) and, for each new id ``i``, the old id at
    ``[i - 1]``. A cell whose visible part falls apart keeps only its largest piece.
    """
    pad = layout.pad_px
    height, width = layout.labels.shape
    labels = layout.labels[pad : height - pad, pad : width - pad].copy()
    _keep_largest_parts(labels)
    kept = np.unique(labels[labels > 0]).astype(np.int64)
    lookup = np.zeros(len(layout.outlines) + 1, np.uint32)
    lookup[kept] = np.arange(1, len(kept) + 1)
    outlines = tuple(
        replace(
            layout.outlines[i - 1],
            center_yx=(
                layout.outlines[i - 1].center_yx[0] - pad,
                layout.outlines[i - 1].center_yx[1] - pad,
            ),
        )
        for i in kept
    )
    return CellLayout(labels=lookup[labels], outlines=outlines, pad_px=0), kept


def touching_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted ids of cells that share a (4-connected) boundary with another cell."""
    pairs: list[np.ndarray] = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        contact = (a != b) & (a > 0) & (b > 0)
        pairs.extend((a[contact], b[contact]))
    if not pairs:
        return np.zeros(0, labels.dtype)
    return np.unique(np.concatenate(pairs))


def _attach(
    rng: np.random.Generator,
    outline: CellOutline,
    outlines: list[CellOutline],
    touching: set[int],
    target_touching: int,
    labels: np.ndarray,
    depth: np.ndarray,
    gap_px: float,
    pad_px: int,
) -> tuple[CellOutline | None, int]:
    """Place ``outline`` overlapping a placed cell; (placed outline, partner id) or (None, 0).

    A lone partner adds two touching cells, one already touching adds one: pick whichever
    brings the count closer to the target.
    """
    ids = np.arange(1, len(outlines) + 1)
    lone = [i for i in ids if i not in touching]
    paired = [i for i in ids if i in touching]
    wants_pair = target_touching - len(touching) >= 2
    first, second = (lone, paired) if wants_pair else (paired, lone)
    candidates = list(rng.permutation(first)) + list(rng.permutation(second))
    for partner in candidates[:_ATTACH_TRIES]:
        other = outlines[partner - 1]
        theta = rng.uniform(-np.pi, np.pi)
        reach_other = float(other.radius_at(np.array([theta]))[0])
        reach_new = float(outline.radius_at(np.array([theta + np.pi]))[0])
        overlap = rng.uniform(0.15, 0.4) * min(reach_other, reach_new)
        distance = reach_other + reach_new - overlap
        center = (
            other.center_yx[0] + distance * np.sin(theta),
            other.center_yx[1] + distance * np.cos(theta),
        )
        placed = replace(outline, center_yx=center)
        if _rasterise(placed, len(outlines) + 1, labels, depth, gap_px, int(partner), pad_px):
            return placed, int(partner)
    return None, 0


def _place_free(
    rng: np.random.Generator,
    outline: CellOutline,
    new_id: int,
    labels: np.ndarray,
    depth: np.ndarray,
    gap_px: float,
    pad_px: int,
    may_cross: bool,
) -> CellOutline | None:
    """Place ``outline`` at a random spot at least ``gap_px`` from every cell, or None.

    Its centre lies in the field; unless ``may_cross``, the whole cell does.
    """
    margin = 0.0 if may_cross else outline.max_radius_px + _BORDER_PX
    field_height, field_width = (n - 2 * pad_px for n in labels.shape)
    if 2 * margin >= min(field_height, field_width):
        return None
    for _ in range(_FREE_TRIES):
        center = (
            pad_px + rng.uniform(margin, field_height - 1 - margin),
            pad_px + rng.uniform(margin, field_width - 1 - margin),
        )
        placed = replace(outline, center_yx=center)
        inside_pad = 0 if may_cross else pad_px
        if _rasterise(placed, new_id, labels, depth, gap_px, 0, inside_pad):
            return placed
    return None


def _rasterise(
    outline: CellOutline,
    cell_id: int,
    labels: np.ndarray,
    depth: np.ndarray,
    gap_px: float,
    allowed: int,
    inside_pad: int,
) -> bool:
    """Write ``outline`` into ``labels`` if it fits; return whether it was written.

    It does not fit when it comes within ``_BORDER_PX`` of the edge of ``labels`` shrunk by
    ``inside_pad`` (the field when that is the padding, else the padded canvas), or within
    ``gap_px`` of a cell other than ``allowed``.
    """
    cy, cx = outline.center_yx
    reach = outline.max_radius_px + gap_px + 1
    height, width = labels.shape
    border = inside_pad + outline.max_radius_px + _BORDER_PX
    if min(cy, cx) < border or cy > height - 1 - border or cx > width - 1 - border:
        return False
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    distance = np.hypot(dy, dx)
    radius = outline.radius_at(np.arctan2(dy, dx)).astype(np.float32)
    window = labels[y0:y1, x0:x1]
    near = window[distance <= radius + gap_px]
    if np.any((near != 0) & (near != allowed)):
        return False
    relative = distance / radius
    owned = (relative <= 1.0) & (relative < depth[y0:y1, x0:x1])
    window[owned] = cell_id
    depth[y0:y1, x0:x1][owned] = relative[owned]
    return True


def _keep_largest_parts(labels: np.ndarray) -> None:
    """Keep only the largest 4-connected part of each label, in place.

    Rare slivers left where two overlapping outlines cut each other become background.
    """
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        mask = labels[box] == index + 1
        parts, n_parts = ndimage.label(mask)
        if n_parts > 1:
            sizes = np.bincount(parts.ravel())[1:]
            labels[box][mask & (parts != 1 + int(np.argmax(sizes)))] = 0
