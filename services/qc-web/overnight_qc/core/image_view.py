"""Everything the image page shows about one result, read once and cached by its ETags."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overnight.review.index import ImageRow
from overnight.review.overlay import (
    CellOutline,
    cell_outlines,
    read_labels,
    read_table,
    type_colours,
)
from overnight.storage.base import ObjectStore
from overnight_qc.core.sources import local_source

#: Columns of ``cells.csv`` shown in the per-cell table, in this order, when present.
CELL_COLUMNS = (
    "cell_id",
    "cell_type",
    "type_confidence",
    "diameter_um",
    "area_px",
    "pnp_count",
    "y",
    "x",
)


@dataclass(frozen=True)
class Marker:
    """One detected particle: position (image px), its cell (0 = glass), multiplicity."""

    x: float
    y: float
    cell_id: int
    multiplicity: int


@dataclass(frozen=True)
class ImageView:
    """The image page's content: result record, per-cell table, outlines, particles, channels."""

    row: ImageRow
    record: dict[str, Any]
    height_px: int
    width_px: int
    cell_columns: tuple[str, ...]
    cells: tuple[dict[str, Any], ...]
    outlines: tuple[CellOutline, ...]
    markers: tuple[Marker, ...]
    colours: dict[str, str]
    channels: tuple[tuple[int, str], ...]
    source_path: Path | None


def channel_labels(record: dict[str, Any]) -> dict[int, str]:
    """Channel index → role name (``cell``, ``pnp``) from the pipeline's ``select_channels``."""
    for step in (record.get("pipeline") or {}).get("steps") or []:
        channels = (step.get("params") or {}).get("channels") if isinstance(step, dict) else None
        if isinstance(channels, dict):
            return {int(i): str(name) for name, i in channels.items() if isinstance(i, int)}
    return {}


def _display(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 3)
    return value


def build_view(
    store: ObjectStore, row: ImageRow, type_names: tuple[str, ...], scratch: Path
) -> ImageView:
    """Read ``result.json``, ``cells.csv``, ``pnps.csv`` and ``labels.tif`` of ``row``."""
    record = json.loads(store.read_bytes(f"{row.prefix}/result.json"))
    cells = read_table(store.read_bytes(f"{row.prefix}/cells.csv"))
    pnps = read_table(store.read_bytes(f"{row.prefix}/pnps.csv"))
    labels = read_labels(store.read_bytes(f"{row.prefix}/labels.tif"))
    known_types = tuple(dict.fromkeys([*type_names, *map(str, cells.get("cell_type", []))]))
    colours = type_colours(known_types)
    types_by_id = {
        int(c): str(t) for c, t in zip(cells["cell_id"], cells["cell_type"], strict=True)
    }
    columns = tuple(c for c in CELL_COLUMNS if c in cells.columns)
    multiplicity = pnps["multiplicity"] if "multiplicity" in pnps else [1] * len(pnps)
    markers = tuple(
        Marker(float(x), float(y), int(cell), int(m))
        for x, y, cell, m in zip(pnps["x"], pnps["y"], pnps["cell_id"], multiplicity, strict=True)
    )
    shape = record.get("shape_zcyx") or [1, 1, *labels.shape]
    source = local_source(store, str(record.get("source", "")), scratch)
    names = channel_labels(record)
    channels = (
        tuple((c, f"{names.get(c, 'channel')} (ch {c})") for c in range(int(shape[1])))
        if source is not None
        else ()
    )
    return ImageView(
        row=row,
        record=record,
        height_px=int(labels.shape[0]),
        width_px=int(labels.shape[1]),
        cell_columns=columns,
        cells=tuple(
            {c: _display(v) for c, v in rec.items()}
            for rec in cells[list(columns)].to_dict("records")
        ),
        outlines=tuple(cell_outlines(labels, types_by_id, colours)),
        markers=markers,
        colours=colours,
        channels=channels,
        source_path=source,
    )


def provenance_steps(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(step, version, parameters as compact JSON) of each pipeline step."""
    out = []
    for step in (record.get("pipeline") or {}).get("steps") or []:
        if isinstance(step, dict):
            params = json.dumps(step.get("params") or {}, sort_keys=True)
            out.append((str(step.get("step", "")), str(step.get("version", "")), params))
    return out
