"""One image's output files as bytes (``labels.tif``, ``cells.csv``, ``pnps.csv``, …).

The same bytes are written by every runner (an embedded run's folder, the queue workers'
object storage, a Kubernetes pod), so every reader sees one format.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from overnight.results.layout import RESULT_FILE
from overnight.results.record import ImageResult

RESULT_FILES = ("labels.tif", "cells.csv", "pnps.csv", "qc.png", RESULT_FILE)


def labels_tiff_bytes(labels: np.ndarray) -> bytes:
    """A ``YX`` label image as a compressed TIFF (uint16 when ids fit, else uint32)."""
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels.astype(dtype), compression="zlib", metadata={"axes": "YX"})
    return buffer.getvalue()


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV without the index."""
    return table.to_csv(index=False).encode("utf-8")


def result_artefacts(values: Mapping[str, Any], result: ImageResult) -> dict[str, bytes]:
    """File name → bytes for one image, from the pipeline's values and its record."""
    return {
        "labels.tif": labels_tiff_bytes(values["cell_labels"]),
        "cells.csv": csv_bytes(values["cells_table"]),
        "pnps.csv": csv_bytes(values["pnps_table"]),
        "qc.png": values["qc_png"],
        RESULT_FILE: result.to_bytes(),
    }
