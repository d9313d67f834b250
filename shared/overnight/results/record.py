"""``result.json``: one typed, versioned record per analysed image, read and written here.

Every runner (embedded, queue, Kubernetes pod) writes it through :meth:`ImageResult.to_bytes`
and every reader (summary table, notebooks, QC web) reads it through :meth:`ImageResult.read`.

Version 2 added ``qc``, a free-form dict of per-image QC flags (version 1 files read with an
empty one), and later ``acquisition``, what the image file says about its acquisition (files
written before read with an empty one).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.storage import ObjectStore

#: Version written by this overnight; :meth:`ImageResult.read` also reads version 1.
RESULT_SCHEMA_VERSION: Literal[2] = 2


class ImageResult(BaseModel):
    """What ``result.json`` holds: provenance, parameters, timings, warnings and summary.

    Fields are written in this order. ``timings_s`` (and ``finished_at``) are the only ones
    that differ between two runs of the same image with the same pipeline and models.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1, 2] = 2
    image_id: str
    source: str = Field(description="the image file the result was computed from")
    shape_zcyx: tuple[int, int, int, int]
    pixel_size_um: float | None
    z_step_um: float | None
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="folders, file name and sidecars (overnight.metadata)"
    )
    pipeline: dict[str, Any] = Field(
        description="name, version, and every step with its version and parameters"
    )
    versions: dict[str, str] = Field(
        description="overnight, python, steps and models: '<step>.model' holds the model's "
        "registry reference '<name>@<version>' (overnight.models.registry)"
    )
    timings_s: dict[str, float] = Field(description="read, then every step (s)")
    warnings: list[str] = Field(default_factory=list)
    summary: dict[str, Any] = Field(description="the image's row of summary.csv")
    finished_at: str
    qc: dict[str, Any] = Field(
        default_factory=dict, description="per-image QC flags, free-form (name -> value)"
    )
    acquisition: dict[str, str] = Field(
        default_factory=dict,
        description="what the file's own metadata says: acquired_at (ISO 8601), elapsed_s "
        "(s after the first timepoint), channel_names (';'-joined), file_format, scene and "
        "timepoint of a file that holds several (ImageStack.acquisition_fields)",
    )

    def to_bytes(self) -> bytes:
        """The ``result.json`` bytes (indented JSON, NaN written as ``NaN``)."""
        body = self.model_dump(mode="python")
        body["schema_version"] = RESULT_SCHEMA_VERSION
        return json.dumps(body, indent=2, default=_json_default).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageResult:
        """Parse ``result.json`` bytes (version 1 or 2)."""
        return cls.model_validate(json.loads(data))

    @classmethod
    def read(cls, store: ObjectStore, image_prefix: str) -> ImageResult:
        """Read ``<image_prefix>/result.json`` from ``store``."""
        return cls.from_bytes(store.read_bytes(f"{image_prefix}/result.json"))

    def manifest_info(self) -> dict[str, Any]:
        """The provenance ``manifest.json`` repeats from ``result.json``."""
        fields = {"image_id", "source", "pipeline", "versions", "finished_at"}
        return self.model_dump(include=fields)

    def summary_row(self) -> dict[str, Any]:
        """The image's row of ``summary.csv``: id, metadata columns, the summary, QC flags.

        ``qc_doubt`` counts the QC flags raised and ``qc_flags`` names them (``;``-separated),
        so a sheet can sort and count doubtful images. The acquisition columns
        (:meth:`acquisition_columns`) follow the metadata.
        """
        row = {
            "image_id": self.image_id,
            **self.metadata,
            **self.acquisition_columns(),
            **self.summary,
        }
        if self.qc:
            row["qc_doubt"] = int(self.qc.get("doubt", 0))
            row["qc_flags"] = ";".join(self.qc.get("flags", []))
        return row

    def acquisition_columns(self) -> dict[str, Any]:
        """``pixel_size_um``, ``z_step_um`` (µm, None when unknown) and the ``acquisition`` fields.

        These are metadata columns of ``summary.csv`` and of ``overnight.results.load``'s
        tables, beside the folder and sidecar metadata (which win on a name clash).
        """
        columns: dict[str, Any] = {"pixel_size_um": self.pixel_size_um}
        columns |= {"z_step_um": self.z_step_um, **self.acquisition}
        return {k: v for k, v in columns.items() if k not in self.metadata}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
