"""Blocks of a large field: where they lie, and which of a block's cells it keeps.

A field too large to analyse whole is cut into ``YX`` blocks: a *core* that the block owns
(cores tile the field without overlap) and a *halo* of context around it, read and analysed
with the core but owned by the neighbours. With a halo wider than the largest cell, a cell
whose centroid lies in a core is seen whole by that block, so

- each block keeps the cells whose centroid lies in its core (one owner per cell: no
  duplicates, no cell split at a seam);
- a cell that two blocks segmented slightly differently (centroids a pixel apart across the
  seam) is kept once: a block also *rescues* a cell whose centroid lies just outside its core,
  in an earlier block's core, when no earlier block painted it, and never keeps a cell that
  mostly covers pixels an earlier block already painted;
- kept cells get field-wide ids in the order they are kept, their table rows are moved to
  field coordinates, and their particles go with them; particles on no cell belong to the
  block whose core holds them.

Everything here is pure: :mod:`overnight.pipeline.block_run` reads, runs and writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A cell whose centroid lies this close (px) outside a block's core can be rescued by it.
RESCUE_MARGIN_PX = 8.0
#: A cell that covers more than this share of its pixels already painted is a duplicate.
DUPLICATE_COVER = 0.5


@dataclass(frozen=True)
class Block:
    """One block of a field: the ``core`` it owns and the ``read`` window (core + halo), px.

    Slices are ``(y, x)`` in field coordinates; ``index`` is the block's place in processing
    (row-major) order.
    """

    index: int
    core: tuple[slice, slice]
    read: tuple[slice, slice]

    @property
    def offset(self) -> tuple[int, int]:
        """Field coordinates (y, x) of the read window's first pixel."""
        return self.read[0].start, self.read[1].start

    def core_in_read(self) -> tuple[slice, slice]:
        """The core as slices of the read window."""
        oy, ox = self.offset
        return (
            slice(self.core[0].start - oy, self.core[0].stop - oy),
            slice(self.core[1].start - ox, self.core[1].stop - ox),
        )


@dataclass(frozen=True)
class BlockPlan:
    """The blocks of a ``shape_yx`` field: core starts along each axis, core side and halo (px)."""

    shape_yx: tuple[int, int]
    core_px: int
    halo_px: int

    @property
    def starts(self) -> tuple[list[int], list[int]]:
        """Core start offsets along Y and along X."""
        return (
            list(range(0, self.shape_yx[0], self.core_px)),
            list(range(0, self.shape_yx[1], self.core_px)),
        )

    @property
    def n_rows(self) -> int:
        """How many rows of blocks."""
        return len(self.starts[0])

    @property
    def n_cols(self) -> int:
        """How many blocks per row."""
        return len(self.starts[1])

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def block(self, row: int, col: int) -> Block:
        """The block at ``(row, col)``."""
        height, width = self.shape_yx
        y0, x0 = row * self.core_px, col * self.core_px
        y1, x1 = min(y0 + self.core_px, height), min(x0 + self.core_px, width)
        return Block(
            index=row * self.n_cols + col,
            core=(slice(y0, y1), slice(x0, x1)),
            read=(
                slice(max(0, y0 - self.halo_px), min(height, y1 + self.halo_px)),
                slice(max(0, x0 - self.halo_px), min(width, x1 + self.halo_px)),
            ),
        )

    def row(self, row: int) -> list[Block]:
        """The blocks of one row, left to right."""
        return [self.block(row, col) for col in range(self.n_cols)]

    def owner_of(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Index of the block whose core holds each field point ``(y, x)`` (px), -1 outside.

        Examples
        --------
        >>> plan = BlockPlan((100, 100), core_px=40, halo_px=8)
        >>> plan.owner_of(np.array([0.0, 39.9, 40.0, 99.0]), np.array([0.0, 50.0, 85.0, 99.0]))
        array([0, 1, 5, 8])
        """
        rows = np.floor(np.asarray(y, float) / self.core_px).astype(np.int64)
        cols = np.floor(np.asarray(x, float) / self.core_px).astype(np.int64)
        inside = (y >= 0) & (x >= 0) & (y < self.shape_yx[0]) & (x < self.shape_yx[1])
        return np.where(inside, rows * self.n_cols + cols, -1)


def plan_blocks(shape_yx: tuple[int, int], core_px: int, halo_px: int) -> BlockPlan:
    """Blocks of ``core_px`` (px) cores with ``halo_px`` of context covering ``shape_yx``.

    Examples
    --------
    >>> plan = plan_blocks((1000, 700), core_px=384, halo_px=64)
    >>> len(plan), plan.block(0, 1).core, plan.block(0, 1).read
    (6, (slice(0, 384, None), slice(384, 700, None)), (slice(0, 448, None), slice(320, 700, None)))
    """
    if core_px <= 0 or halo_px < 0:
        raise ValueError(f"block core must be > 0 and halo >= 0 px, got {core_px}, {halo_px}")
    return BlockPlan((int(shape_yx[0]), int(shape_yx[1])), int(core_px), int(halo_px))


@dataclass(frozen=True)
class KeptCells:
    """What one block contributes to the field.

    Attributes
    ----------
    labels : ndarray of shape (Y, X), uint32
        The read window's labels with only the kept cells, in field-wide ids (0 elsewhere).
    cells : pandas.DataFrame
        Their ``cells.csv`` rows, ids and centroids in field terms.
    pnps : pandas.DataFrame
        Their particles and the block's particles on no cell, in field coordinates.
    """

    labels: np.ndarray
    cells: pd.DataFrame
    pnps: pd.DataFrame


def painted_cover(labels: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """Share of each label's pixels (index = label id) already non-zero in ``painted``.

    Examples
    --------
    >>> painted_cover(np.array([[1, 1, 2, 2]]), np.array([[0, 5, 5, 5]])).tolist()
    [0.0, 0.5, 1.0]
    """
    n = int(labels.max(initial=0)) + 1
    area = np.bincount(labels.ravel(), minlength=n)
    covered = np.bincount(labels[painted != 0].ravel(), minlength=n)
    return covered / np.maximum(area, 1)


def cells_to_keep(
    block: Block, plan: BlockPlan, cells: pd.DataFrame, cover: np.ndarray
) -> np.ndarray:
    """Boolean mask over ``cells`` rows (block coordinates) of the cells ``block`` keeps.

    A cell is kept when its centroid lies in the block's core, or within
    :data:`RESCUE_MARGIN_PX` of it in an earlier block's core, and at most
    :data:`DUPLICATE_COVER` of it is already painted (``cover``, see :func:`painted_cover`).
    """
    oy, ox = block.offset
    y, x = cells["y"].to_numpy(float) + oy, cells["x"].to_numpy(float) + ox
    owner = plan.owner_of(y, x)
    near = (
        (y >= block.core[0].start - RESCUE_MARGIN_PX)
        & (y < block.core[0].stop + RESCUE_MARGIN_PX)
        & (x >= block.core[1].start - RESCUE_MARGIN_PX)
        & (x < block.core[1].stop + RESCUE_MARGIN_PX)
    )
    ids = cells["cell_id"].to_numpy(np.int64)
    fresh = cover[ids] <= DUPLICATE_COVER
    return fresh & ((owner == block.index) | (near & (owner >= 0) & (owner < block.index)))


def keep_block_cells(
    block: Block,
    plan: BlockPlan,
    labels: np.ndarray,
    cells: pd.DataFrame,
    pnps: pd.DataFrame,
    painted: np.ndarray,
    first_id: int,
) -> KeptCells:
    """The cells ``block`` keeps, relabelled from ``first_id`` and moved to field coordinates.

    Parameters
    ----------
    block, plan : Block, BlockPlan
        Where the block lies.
    labels : ndarray of shape (Y, X)
        The block's cell labels over its read window (block ids).
    cells, pnps : pandas.DataFrame
        The block's ``cells.csv`` and ``pnps.csv`` rows (block ids and coordinates).
    painted : ndarray of shape (Y, X)
        Field labels earlier blocks painted over the same read window (0 = none yet).
    first_id : int
        The field-wide id of the first kept cell.
    """
    keep = cells_to_keep(block, plan, cells, painted_cover(labels, painted))
    kept = cells.loc[keep].copy()
    old_ids = kept["cell_id"].to_numpy(np.int64)
    new_ids = np.arange(first_id, first_id + len(kept), dtype=np.int64)
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    lut[old_ids] = new_ids
    oy, ox = block.offset
    kept["cell_id"] = new_ids
    kept["y"] = (kept["y"] + oy).round(2)
    kept["x"] = (kept["x"] + ox).round(2)
    particles = pnps.copy()
    cell_of = particles["cell_id"].to_numpy(np.int64)
    py, px = particles["y"].to_numpy(float) + oy, particles["x"].to_numpy(float) + ox
    on_glass = (cell_of == 0) & (plan.owner_of(py, px) == block.index)
    on_kept = np.isin(cell_of, old_ids) & (cell_of != 0)
    particles = particles.loc[on_glass | on_kept].copy()
    particles["cell_id"] = lut[np.minimum(particles["cell_id"].to_numpy(np.int64), len(lut) - 1)]
    particles["y"] = (particles["y"] + oy).round(2)
    particles["x"] = (particles["x"] + ox).round(2)
    return KeptCells(lut[labels], kept.reset_index(drop=True), particles.reset_index(drop=True))
