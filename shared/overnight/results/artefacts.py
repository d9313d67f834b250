"""Turn one image's pipeline run into the files of the output format (as bytes).

The same bytes are written by the embedded run (a folder) and by the workers (object
storage), so every reader sees one format: ``labels.tif``, ``cells.csv``, ``pnps.csv``,
``qc.png``, ``result.json``.
"""

from __future__ import annotations

import io
import json
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from overnight import __version__
from overnight.imaging.stack import ImageStack
from overnight.pipeline.runner import PipelineRun
from overnight.results.summary import image_summary

RESULT_FILES = ("labels.tif", "cells.csv", "pnps.csv", "qc.png", "result.json")


def labels_tiff_bytes(labels: np.ndarray) -> bytes:
    """A ``YX`` label image as a compressed TIFF (uint16 when ids fit, else uint32)."""
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels.astype(dtype), compression="zlib", metadata={"axes": "YX"})
    return buffer.getvalue()


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV without the index."""
    return table.to_csv(index=False).encode("utf-8")


def result_record(
    stack: ImageStack,
    run: PipelineRun,
    pipeline: Mapping[str, Any],
    versions: Mapping[str, str],
    metadata: Mapping[str, Any],
    warnings: list[str],
    read_s: float,
    type_names: tuple[str, ...],
) -> dict[str, Any]:
    """The ``result.json`` content: provenance, parameters, timings, warnings and summary."""
    cells: pd.DataFrame = run.values["cells_table"]
    pnps: pd.DataFrame = run.values["pnps_table"]
    z, c, y, x = stack.shape_zcyx
    return {
        "schema_version": 1,
        "image_id": stack.image_id,
        "source": stack.source,
        "shape_zcyx": [z, c, y, x],
        "pixel_size_um": stack.pixel_size_um,
        "z_step_um": stack.z_step_um,
        "metadata": dict(metadata),
        "pipeline": dict(pipeline),
        "versions": {"overnight": __version__, "python": platform.python_version(), **versions},
        "timings_s": {
            "read": round(read_s, 4),
            **{k: round(v, 4) for k, v in run.timings_s.items()},
        },
        "warnings": list(warnings),
        "summary": image_summary(cells, pnps, type_names),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def manifest_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance a result's ``manifest.json`` repeats from ``result.json``."""
    return {k: record[k] for k in ("image_id", "source", "pipeline", "versions", "finished_at")}


def result_artefacts(run: PipelineRun, record: Mapping[str, Any]) -> dict[str, bytes]:
    """File name → bytes for one image, in the output format."""
    return {
        "labels.tif": labels_tiff_bytes(run.values["cell_labels"]),
        "cells.csv": csv_bytes(run.values["cells_table"]),
        "pnps.csv": csv_bytes(run.values["pnps_table"]),
        "qc.png": run.values["qc_png"],
        "result.json": json.dumps(record, indent=2, default=_json_default).encode("utf-8"),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
