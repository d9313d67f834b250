"""Load a dataset's results into pandas DataFrames for notebooks.

Works on an embedded run's output folder and on ``results/<dataset_id>/`` in object
storage alike (same layout), whatever the output form (``--format tiff`` or ``ome-zarr``: the
tables are the same); only complete results (with a manifest) are read. A skin PK output
(``overnight pk run``, the ``skin-pk`` pipeline) loads too: one ``images`` row per timepoint,
and its ``profiles.csv`` / ``nca.csv`` / ``nca_depth.csv`` as ``profiles``, ``nca`` and
``nca_depth``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from overnight.config import CommonSettings
from overnight.results.layout import DatasetResults
from overnight.results.record import ImageResult
from overnight.storage import ObjectStore, open_store, read_manifest


@dataclass(frozen=True)
class Results:
    """A dataset's results: ``images`` (one row per image) and ``cells`` (one per cell).

    Both carry ``image_id`` and the image's metadata columns (date, user, sample, drug, …,
    then ``pixel_size_um``, ``z_step_um`` and what the file says about its acquisition:
    ``acquired_at``, ``channel_names``, ``file_format``, ``scene``, ``timepoint``), so
    ``results.cells.query("drug == 'rux'")`` works directly. ``pnps`` has one row per detected
    particle.
    """

    images: pd.DataFrame
    cells: pd.DataFrame
    pnps: pd.DataFrame
    #: Skin PK outputs: signal per time, depth and compartment; NCA pooled and per depth.
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    nca: pd.DataFrame = field(default_factory=pd.DataFrame)
    nca_depth: pd.DataFrame = field(default_factory=pd.DataFrame)


def load(
    location: str | Path,
    prefix: str = "",
    include_pnps: bool = False,
    settings: CommonSettings | None = None,
) -> Results:
    """Read every complete result under ``location`` (a folder or a storage URL).

    ``prefix`` selects a dataset inside a store (e.g. ``results/ds-42``). ``settings`` give
    the S3 endpoint and keys of an ``s3://`` location (e.g.
    ``overnight.config.load_settings(CommonSettings)``, from ``OVERNIGHT_S3_*``); None: AWS,
    anonymous.
    """
    store = open_store(str(location), settings)
    return load_from_store(store, prefix, include_pnps)


def load_from_store(store: ObjectStore, prefix: str = "", include_pnps: bool = False) -> Results:
    """Like :func:`load` on an already opened store."""
    image_rows, cell_tables, pnp_tables = [], [], []
    for image_prefix in DatasetResults(store, prefix).published_images():
        if read_manifest(store, image_prefix) is None:
            continue
        body = json.loads(store.read_bytes(f"{image_prefix}/result.json"))
        if isinstance(body.get("pipeline"), str):  # a skin PK timepoint's record
            image_rows.append(_timepoint_row(body))
            continue
        record = ImageResult.model_validate(body)
        columns = {
            "image_id": record.image_id,
            **record.metadata,
            **record.acquisition_columns(),
        }
        image_rows.append(record.summary_row())
        cells = pd.read_csv(io.BytesIO(store.read_bytes(f"{image_prefix}/cells.csv")))
        cell_tables.append(cells.assign(**columns))
        if include_pnps:
            pnps = pd.read_csv(io.BytesIO(store.read_bytes(f"{image_prefix}/pnps.csv")))
            pnp_tables.append(pnps.assign(**columns))
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return Results(
        images=pd.DataFrame(image_rows),
        cells=_concat(cell_tables),
        pnps=_concat(pnp_tables),
        profiles=_table(store, f"{base}profiles.csv"),
        nca=_table(store, f"{base}nca.csv"),
        nca_depth=_table(store, f"{base}nca_depth.csv"),
    )


def _timepoint_row(body: dict[str, Any]) -> dict[str, Any]:
    """The ``images`` row of a skin PK timepoint: id, metadata, pixel size, compartment areas."""
    return {
        "image_id": body.get("image_id"),
        **(body.get("metadata") or {}),
        "pixel_size_um": body.get("pixel_size_um"),
        "pipeline": body.get("pipeline"),
        **(body.get("summary") or {}),
    }


def _table(store: ObjectStore, key: str) -> pd.DataFrame:
    if not store.exists(key):
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(store.read_bytes(key)))


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame()
    front = ["image_id"]
    table = pd.concat(tables, ignore_index=True)
    return table[front + [c for c in table.columns if c not in front]]
