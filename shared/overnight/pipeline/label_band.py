"""The band of field label rows that blocks paint into before the rows are written out.

Blocks are analysed row by row (:mod:`overnight.pipeline.blocks`); a kept cell reaches at most
a halo beyond its block's core, so once a row of blocks is done, every field row above the
next row's read windows is final. :class:`LabelBand` holds only the rows still open (about a
block's height plus a halo and one tile, times the field's width, uint32) and releases final
rows in whole tile rows, ready to be written as TIFF tiles.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

LABEL_DTYPE = np.dtype(np.uint32)


class LabelBand:
    """Open label rows ``[top, top + capacity)`` of a ``height`` x ``width`` field (px).

    ``top`` is always a multiple of ``tile_px``: released rows come in whole tile rows (the
    last, at the field's end, may be shorter).
    """

    def __init__(self, height: int, width: int, capacity: int, tile_px: int) -> None:
        self.height, self.width, self.tile_px = height, width, tile_px
        self.top = 0
        self._rows = np.zeros((min(height, capacity + tile_px), width), LABEL_DTYPE)

    def window(self, ys: slice, xs: slice) -> np.ndarray:
        """The open rows ``ys`` x columns ``xs`` (field px), a view.

        Raises
        ------
        ValueError
            When ``ys`` reaches rows already released or beyond the band's capacity.
        """
        start, stop = ys.start - self.top, ys.stop - self.top
        if start < 0 or stop > self._rows.shape[0]:
            raise ValueError(
                f"rows {ys.start}:{ys.stop} are outside the open band "
                f"{self.top}:{self.top + self._rows.shape[0]}"
            )
        return self._rows[start:stop, xs]

    def paint(self, ys: slice, xs: slice, labels: np.ndarray) -> None:
        """Write ``labels``' non-zero pixels where the band is still 0 (earlier blocks win)."""
        target = self.window(ys, xs)
        free = (target == 0) & (labels != 0)
        target[free] = labels[free]

    def release(self, until: int) -> Iterator[tuple[int, np.ndarray]]:
        """Hand out final rows below ``until`` (px) in whole tile rows: ``(first row, rows)``.

        ``until`` at the field's height releases everything left.
        """
        if until >= self.height:
            end = self.height
        else:
            end = self.top + (until - self.top) // self.tile_px * self.tile_px
        while self.top < end:
            n = min(self.tile_px, end - self.top)
            rows = self._rows[:n].copy()
            yield self.top, rows
            kept = self._rows.shape[0] - n
            self._rows[:kept] = self._rows[n:].copy()
            self._rows[kept:] = 0
            self.top += n


def tiles_of_rows(rows: np.ndarray, tile_px: int) -> Iterator[np.ndarray]:
    """``tile_px``² tiles of a tile row, left to right, zero-padded at the field's edges.

    Examples
    --------
    >>> [t.shape for t in tiles_of_rows(np.ones((3, 5), np.uint32), 4)]
    [(4, 4), (4, 4)]
    """
    height, width = rows.shape
    for x0 in range(0, width, tile_px):
        tile = np.zeros((tile_px, tile_px), rows.dtype)
        part = rows[:, x0 : x0 + tile_px]
        tile[:height, : part.shape[1]] = part
        yield tile
