"""The in-memory form of one field of view, in the pipeline's single axis order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The pipeline's axis order. Readers convert to it once; nothing else reorders axes.
PIPELINE_AXES = "ZCYX"

# ImageStack.metadata keys that describe the acquisition rather than the file's layout.
_ACQUISITION_KEYS = ("acquired_at", "elapsed_s", "file_format")


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

    def acquisition_fields(self) -> dict[str, str]:
        """What the file says about its acquisition, as flat text fields for ``result.json``.

        ``acquired_at`` (ISO 8601; of the timepoint when the file says, else of the file),
        ``elapsed_s`` (s from the file's first timepoint, where stated), ``channel_names``
        (joined with ``;``), ``file_format``, ``scene`` and ``timepoint`` (of files that hold
        several), those the reader found. Pixel size and z-step have their own fields.

        Examples
        --------
        >>> import numpy as np
        >>> stack = ImageStack(np.zeros((1, 2, 4, 4), "uint16"), "a", "a.nd2",
        ...                    channel_names=("DAPI", "GFP"),
        ...                    metadata={"acquired_at": "2014-06-18T13:55:23+00:00"})
        >>> stack.acquisition_fields()
        {'acquired_at': '2014-06-18T13:55:23+00:00', 'channel_names': 'DAPI;GFP'}
        """
        fields = {key: str(self.metadata[key]) for key in _ACQUISITION_KEYS if key in self.metadata}
        if self.channel_names:
            fields["channel_names"] = ";".join(self.channel_names)
        for key, count in (("scene", "n_scenes"), ("timepoint", "n_timepoints")):
            if int(self.metadata.get(count, 1)) > 1:
                fields[key] = str(self.metadata[key])
        return fields
