"""The in-memory form of one field of view, in the pipeline's single axis order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The pipeline's axis order. Readers convert to it once; nothing else reorders axes.
PIPELINE_AXES = "ZCYX"


@dataclass(frozen=True)
class ImageStack:
    """Pixels of one field of view as ``ZCYX`` plus where they came from.

    ``data`` may be a numpy memmap for large files; steps must not write to it.
    Sizes are in µm; ``None`` when the file does not say.
    """

    data: np.ndarray
    image_id: str
    source: str
    pixel_size_um: float | None = None
    z_step_um: float | None = None
    channel_names: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != len(PIPELINE_AXES):
            raise ValueError(
                f"{self.source}: ImageStack needs {PIPELINE_AXES} (4 axes), "
                f"got shape {self.data.shape}"
            )

    @property
    def shape_zcyx(self) -> tuple[int, int, int, int]:
        """(Z, C, Y, X) sizes."""
        z, c, y, x = self.data.shape
        return int(z), int(c), int(y), int(x)

    def channel(self, index: int) -> np.ndarray:
        """One channel as ``ZYX`` (a view, not a copy)."""
        return self.data[:, index]
