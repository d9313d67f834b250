"""One image's output files as bytes (``labels.tif``, ``cells.csv``, ``pnps.csv``, …).

The same bytes are written by every runner (an embedded run's folder, the queue workers'
object storage, a Kubernetes pod), so every reader sees one format.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from overnight.results.layout import RESULT_FILE
from overnight.results.ome_zarr import OME_ZARR_NAME, OutputFormat, ome_zarr_files
from overnight.results.record import ImageResult
from overnight.results.summary import spreadsheet_safe

RESULT_FILES = ("labels.tif", "cells.csv", "pnps.csv", "qc.png", RESULT_FILE)


def labels_tiff_bytes(labels: np.ndarray, pixel_size_um: float | None = None) -> bytes:
    """A ``YX`` label image as a compressed OME-TIFF (uint16 when ids fit, else uint32).

    Parameters
    ----------
    labels : ndarray of shape (Y, X)
        Instance labels, 0 = background.
    pixel_size_um : float, optional
        Written as OME ``PhysicalSizeX`` / ``PhysicalSizeY`` in µm (and as the TIFF resolution
        tags, in cm, for readers that do not parse OME-XML); omitted when unknown.

    Returns
    -------
    bytes
        An OME-TIFF with one ``YX`` plane, named ``labels``; plain ``tifffile.imread`` reads it
        back as the (Y, X) array, and OME readers (Bio-Formats, napari, bioio) with its scale.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels should be YX (2 axes) but have shape {labels.shape}")
    dtype = np.uint16 if labels.max(initial=0) < 2**16 else np.uint32
    pixels = np.ascontiguousarray(labels.astype(dtype))
    identity = pixels.tobytes() + repr((pixels.shape, pixel_size_um)).encode()
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, **_ome_labels_options(identity, pixel_size_um))
    return buffer.getvalue()


def _ome_labels_options(identity: bytes, pixel_size_um: float | None) -> dict[str, Any]:
    """``tifffile.imwrite`` options of an OME-TIFF label image: axes, µm pixel size, a UUID.

    OME files carry a UUID; one derived from ``identity`` (the content, or what determines it)
    keeps the bytes reproducible, so a re-run's sha256 in ``manifest.json`` is stable.
    """
    digest = hashlib.sha256(identity).digest()
    metadata: dict[str, object] = {
        "axes": "YX",
        "Name": "labels",
        "UUID": f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}",
    }
    resolution: tuple[float, float] | None = None
    if pixel_size_um is not None and pixel_size_um > 0:
        metadata |= {
            "PhysicalSizeX": pixel_size_um,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": pixel_size_um,
            "PhysicalSizeYUnit": "µm",
        }
        resolution = (1e4 / pixel_size_um, 1e4 / pixel_size_um)
    return {
        "ome": True,
        "photometric": "minisblack",
        "compression": "zlib",
        "metadata": metadata,
        "resolution": resolution,
        "resolutionunit": "CENTIMETER" if resolution else None,
    }


def write_labels_tiff_tiles(
    path: Path,
    tiles: Iterable[np.ndarray],
    shape_yx: tuple[int, int],
    tile_px: int,
    pixel_size_um: float | None,
    identity: bytes,
) -> None:
    """Write a ``YX`` uint32 label image to ``path`` tile by tile, as :func:`labels_tiff_bytes`.

    For fields too large to hold whole (:mod:`overnight.pipeline.block_run`): ``tiles`` yields
    ``tile_px``² uint32 tiles in row-major order and may compute each one when asked; only
    one tile is held at a time. ``identity`` (e.g. a digest of the input and pipeline) makes
    the OME UUID, so a re-run writes the same bytes.
    """
    tifffile.imwrite(
        path,
        iter(tiles),
        shape=shape_yx,
        dtype=np.uint32,
        tile=(tile_px, tile_px),
        **_ome_labels_options(identity, pixel_size_um),
    )


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV without the index, formula-like text quoted (``spreadsheet_safe``)."""
    return spreadsheet_safe(table).to_csv(index=False).encode("utf-8")


def result_artefacts(
    values: Mapping[str, Any],
    result: ImageResult,
    *,
    output_format: OutputFormat = "tiff",
    image_zcyx: np.ndarray | None = None,
    channel_names: tuple[str, ...] | None = None,
) -> dict[str, bytes]:
    """File name → bytes for one image, from the pipeline's values and its record.

    ``output_format="ome-zarr"`` adds ``image.ome.zarr/`` (:mod:`overnight.results.ome_zarr`):
    a multiscale copy of ``image_zcyx`` (the input, ZCYX) with the cell labels beside it.
    """
    files = {
        # a field analysed in blocks brings its labels written tile by tile (block_run.py)
        "labels.tif": values["labels_tiff"]
        if "labels_tiff" in values
        else labels_tiff_bytes(values["cell_labels"], result.pixel_size_um),
        "cells.csv": csv_bytes(values["cells_table"]),
        "pnps.csv": csv_bytes(values["pnps_table"]),
        "qc.png": values["qc_png"],
        RESULT_FILE: result.to_bytes(),
    }
    if output_format == "ome-zarr":
        blocked = image_zcyx is not None and image_zcyx.size > 1 and not any(image_zcyx.strides)
        if image_zcyx is None or blocked or "cell_labels" not in values:
            raise ValueError(
                f"{result.source}: the ome-zarr output needs the whole input image and its cell "
                "labels in memory, which a field analysed in blocks (larger than "
                "OVERNIGHT_MAX_WORKING_SET_GB) does not have; use --format tiff for it"
            )
        zarr_files = ome_zarr_files(
            image_zcyx,
            values["cell_labels"],
            name=result.image_id,
            pixel_size_um=result.pixel_size_um,
            z_step_um=result.z_step_um,
            channel_names=channel_names,
        )
        files |= {f"{OME_ZARR_NAME}/{key}": data for key, data in zarr_files.items()}
    return files
