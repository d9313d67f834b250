"""The per-cell and per-particle tables, in the output format of IMAGING_MODEL.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from overnight.lazy import lazy_module
from overnight.steps.classify import CellTypes
from overnight.steps.counting import ParticleCounts
from overnight.steps.pnp import Spots

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from skimage import measure
else:
    measure = lazy_module("skimage.measure")

CELL_COLUMNS = ("cell_id", "y", "x", "area_px", "cell_type", "pnp_count")
PNP_COLUMNS = ("z", "y", "x", "cell_id", "intensity")


def cell_table(
    labels: np.ndarray, types: CellTypes, counts: ParticleCounts, pixel_size_um: float
) -> pd.DataFrame:
    """One row per cell: ``cell_id, y, x, area_px, cell_type, pnp_count`` then extras.

    Extras: ``diameter_um`` (equivalent diameter) and ``type_confidence``.
    """
    props = measure.regionprops(labels)
    type_of = types.as_dict()
    confidence = dict(zip(types.cell_ids.tolist(), types.confidence.tolist(), strict=True))
    count_of = counts.as_dict()
    rows = [
        {
            "cell_id": p.label,
            "y": round(float(p.centroid[0]), 2),
            "x": round(float(p.centroid[1]), 2),
            "area_px": int(p.area),
            "cell_type": type_of.get(p.label, ""),
            "pnp_count": count_of.get(p.label, 0),
            "diameter_um": round(float(p.equivalent_diameter_area) * pixel_size_um, 3),
            "type_confidence": round(float(confidence.get(p.label, np.nan)), 4),
        }
        for p in props
    ]
    columns = [*CELL_COLUMNS, "diameter_um", "type_confidence"]
    return pd.DataFrame(rows, columns=columns)


def pnp_table(spots: Spots, counts: ParticleCounts) -> pd.DataFrame:
    """One row per spot that holds a particle: ``z, y, x, cell_id, intensity``, ``multiplicity``.

    ``multiplicity`` is the spot's settled number of particles (``counts.spot_multiplicity``),
    so ``multiplicity`` summed per ``cell_id`` equals ``pnp_count`` in ``cells.csv``.
    """
    keep = counts.spot_multiplicity > 0
    return pd.DataFrame(
        {
            "z": np.round(spots.z[keep], 2),
            "y": np.round(spots.y[keep], 2),
            "x": np.round(spots.x[keep], 2),
            "cell_id": counts.spot_cell_ids[keep].astype(np.int64),
            "intensity": np.round(spots.intensity[keep], 1),
            "multiplicity": counts.spot_multiplicity[keep].astype(np.int64),
        },
        columns=[*PNP_COLUMNS, "multiplicity"],
    )
