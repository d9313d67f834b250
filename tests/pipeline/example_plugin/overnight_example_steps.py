"""A lab member's own step, shipped in their own package (here: a test fixture).

Its package declares, in pyproject.toml::

    [project.entry-points."overnight.steps"]
    cell_brightness = "overnight_example_steps:cell_brightness"
"""

from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy import ndimage as ndi

from overnight.pipeline.registry import step


class BrightnessParams(BaseModel):
    percentile: float = 50.0


@step(
    "cell_brightness",
    requires=("cell_image", "cell_labels"),
    provides=("cell_brightness",),
    params=BrightnessParams,
    version="0.1",
)
def cell_brightness(
    cell_image: np.ndarray, cell_labels: np.ndarray, params: BrightnessParams, state: Any
) -> dict[int, float]:
    """Mean cell-channel intensity per cell."""
    ids = np.unique(cell_labels)
    ids = ids[ids > 0]
    means = ndi.mean(cell_image, cell_labels, ids)
    return dict(zip(ids.tolist(), np.asarray(means, dtype=float).tolist(), strict=True))
