"""Cell-type classification; the classical rule is by size, the label set is configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from skimage import measure
else:
    measure = lazy_module("skimage.measure")


class CellTypeRule(BaseModel):
    """A cell type and the largest equivalent diameter (µm) a cell of it may have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    max_diameter_um: float | None = Field(None, description="None: no upper bound (the last type)")


DEFAULT_TYPE_RULES = (
    CellTypeRule(name="lymphocyte", max_diameter_um=10.0),
    CellTypeRule(name="monocyte", max_diameter_um=None),
)


@dataclass(frozen=True)
class CellTypes:
    """Type name and confidence (0–1) per cell id (arrays aligned with ``cell_ids``)."""

    cell_ids: np.ndarray
    names: tuple[str, ...]
    confidence: np.ndarray

    def as_dict(self) -> dict[int, str]:
        """Cell id → type name."""
        return {int(i): n for i, n in zip(self.cell_ids, self.names, strict=True)}


def classify_by_size(
    labels: np.ndarray, pixel_size_um: float, rules: tuple[CellTypeRule, ...] = DEFAULT_TYPE_RULES
) -> CellTypes:
    """Give each cell of ``labels`` (``YX``) the first type whose size bound it fits.

    Confidence grows with the distance of the diameter from the nearest bound (1 µm → 0.73).
    """
    props = measure.regionprops(labels)
    ids = np.array([p.label for p in props], dtype=np.int64)
    diameters = np.array([p.equivalent_diameter_area * pixel_size_um for p in props])
    names: list[str] = []
    confidence = np.ones(len(props))
    bounds = [r.max_diameter_um for r in rules if r.max_diameter_um is not None]
    for i, d in enumerate(diameters):
        chosen = next(r.name for r in rules if r.max_diameter_um is None or d <= r.max_diameter_um)
        names.append(chosen)
        if bounds:
            margin = min(abs(d - b) for b in bounds)
            confidence[i] = 1.0 / (1.0 + np.exp(-margin))
    return CellTypes(cell_ids=ids, names=tuple(names), confidence=confidence)
