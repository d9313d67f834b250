"""Load a dataset's results into pandas DataFrames for notebooks.

Works on an embedded run's output folder and on ``results/<dataset_id>/`` in object
storage alike (same layout); only complete results (with a manifest) are read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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


def load(location: str | Path, prefix: str = "", include_pnps: bool = False) -> Results:
    """Read every complete result under ``location`` (a folder or a storage URL).

    ``prefix`` selects a dataset inside a store (e.g. ``results/ds-42``).
    """
    store = open_store(str(location))
    return load_from_store(store, prefix, include_pnps)


def load_from_store(store: ObjectStore, prefix: str = "", include_pnps: bool = False) -> Results:
    """Like :func:`load` on an already opened store."""
    image_rows, cell_tables, pnp_tables = [], [], []
    for image_prefix in DatasetResults(store, prefix).published_images():
        if read_manifest(store, image_prefix) is None:
            continue
        record = ImageResult.read(store, image_prefix)
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
    return Results(
        images=pd.DataFrame(image_rows),
        cells=_concat(cell_tables),
        pnps=_concat(pnp_tables),
    )


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame()
    front = ["image_id"]
    table = pd.concat(tables, ignore_index=True)
    return table[front + [c for c in table.columns if c not in front]]
