"""The QC of a field analysed in blocks: its flags merged over blocks, its overview picture.

The QC flags are measured per block: ``signals`` are the medians over blocks, and a flag is
raised when at least half the blocks raise it (``qc.blocks`` says how many did). The QC
picture is drawn from an overview of the field (every ``step``-th pixel of the cell image and
the labels) filled block by block, so the whole field is never held at full resolution.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from overnight.pipeline.blocks import Block
from overnight.steps.qc import render_qc_png


def merge_qc(reports: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One field's ``qc`` from its blocks': median signals, flags raised by half the blocks.

    Examples
    --------
    >>> qc = merge_qc([{"flags": ["dim"], "signals": {"snr": 1.0}},
    ...                {"flags": [], "signals": {"snr": 3.0}},
    ...                {"flags": ["dim"], "signals": {"snr": None}}])
    >>> qc["flags"], qc["signals"], qc["blocks"]
    (['dim'], {'snr': 2.0}, {'n': 3, 'flagged': {'dim': 2}})
    """
    reports = [r for r in reports if r]
    if not reports:
        return {}
    names = sorted({k for r in reports for k in (r.get("signals") or {})})
    signals: dict[str, float | None] = {}
    for name in names:
        values = [r["signals"][name] for r in reports if r["signals"].get(name) is not None]
        signals[name] = round(float(np.median(values)), 4) if values else None
    flagged = Counter(f for r in reports for f in r.get("flags", []))
    flags = sorted(f for f, n in flagged.items() if 2 * n >= len(reports))
    return {
        "flags": flags,
        "doubt": len(flags),
        "signals": signals,
        "blocks": {"n": len(reports), "flagged": dict(sorted(flagged.items()))},
    }


class FieldOverview:
    """A field's downsampled cell image and labels (every ``step``-th pixel) for the QC picture."""

    def __init__(self, shape_yx: tuple[int, int], max_side_px: int) -> None:
        self.max_side_px = max_side_px
        self.step = max(1, math.ceil(max(shape_yx) / max_side_px))
        size = (-(-shape_yx[0] // self.step), -(-shape_yx[1] // self.step))
        self.image = np.zeros(size, np.float32)
        self.labels = np.zeros(size, np.uint32)

    def _grid(self, start: int, stop: int) -> tuple[slice, slice]:
        """Local slice of the grid points in field ``[start, stop)`` and their overview slice."""
        first = -start % self.step
        n = len(range(start + first, stop, self.step))
        if n == 0:
            return slice(0, 0), slice(0, 0)
        at = (start + first) // self.step
        return slice(first, first + (n - 1) * self.step + 1, self.step), slice(at, at + n)

    def add_image(self, block: Block, cell_image: np.ndarray) -> None:
        """Sample the block's core of the ``YX`` cell image (read-window coordinates)."""
        (ly, oy), (lx, ox) = self._grid(*_span(block.core[0])), self._grid(*_span(block.core[1]))
        core_y, core_x = block.core_in_read()
        core = cell_image[core_y, core_x]
        self.image[oy, ox] = core[ly, lx]

    def add_rows(self, first_row: int, rows: np.ndarray) -> None:
        """Sample released label rows ``[first_row, first_row + len(rows))``."""
        ly, oy = self._grid(first_row, first_row + rows.shape[0])
        if oy.stop > oy.start:
            self.labels[oy] = rows[ly, :: self.step]

    def picture(
        self, cells: pd.DataFrame, pnps: pd.DataFrame, type_names: tuple[str, ...], title: str
    ) -> bytes:
        """The field's QC picture from the overview, the field's tables (field px) drawn on it."""
        return render_qc_png(
            self.image,
            self.labels,
            _scaled(cells, self.step),
            _scaled(pnps, self.step),
            type_names,
            title,
            self.max_side_px,
        )


def _span(s: slice) -> tuple[int, int]:
    return int(s.start), int(s.stop)


def _scaled(table: pd.DataFrame, step: int) -> pd.DataFrame:
    scaled = table.copy()
    scaled[["y", "x"]] = scaled[["y", "x"]] / step
    return scaled
