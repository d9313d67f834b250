"""A skin pharmacokinetics dataset as the QC PK page shows it.

``overnight pk run IN --out OUT`` writes, beside one ``<image_id>/`` folder per timepoint
(``labels.tif``, ``overlay.png``, ``result.json``), the dataset files read here:
``series.json`` (timepoints, model, parameters, warnings, failures), ``nca.csv`` (one row per
compartment), ``profiles.csv`` (time, depth, compartment, signal, n_px) and plots under
``pk/``. A dataset is a PK dataset when it holds ``series.json`` or ``nca.csv``.

Everything is read through :mod:`overnight.storage`; keys are built from validated ids and
plot names are served only when a listing of ``<dataset>/pk/`` holds them.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from overnight.analysis.nca import NCA_VALUES, NcaResult
from overnight.errors import ObjectNotFoundError, UnsafeKeyError
from overnight.review.listing import child_key
from overnight.storage.base import ObjectInfo, ObjectStore
from overnight.storage.keys import validate_id

logger = logging.getLogger(__name__)
T = TypeVar("T")

SERIES = "series.json"
NCA = "nca.csv"
PROFILES = "profiles.csv"
#: Dataset-level tables a reader may download (nothing else at the dataset's top level).
PK_TABLES = ("nca.csv", "nca_depth.csv", "profiles.csv")
PLOT_FOLDER = "pk"
OVERLAY = "overlay.png"
#: The plot shown first, largest: drug signal over depth and time.
HEATMAP = "depth_time_heatmap.png"
#: Time unit of every PK table (``time_min`` of the timepoints).
TIME_UNIT = "min"


@dataclass(frozen=True)
class PkUnits:
    """Units of the NCA columns: concentration ``c`` (ADU above background unless calibrated)."""

    c: str
    t: str = TIME_UNIT

    def of(self, column: str) -> str:
        """The unit of an NCA column (``""`` for dimensionless ones)."""
        return {
            "cmax": self.c,
            "clast": self.c,
            "tmax": self.t,
            "tlast": self.t,
            "auc_last": f"{self.c}·{self.t}",
            "auc_inf_obs": f"{self.c}·{self.t}",
            "lambda_z": f"1/{self.t}",
            "half_life": self.t,
        }.get(column, "")


@dataclass(frozen=True, kw_only=True)
class NcaRow(NcaResult):
    """One row of ``nca.csv``: a compartment and its NCA parameters.

    The fields are :class:`~overnight.analysis.nca.NcaResult`'s, the schema the writer uses;
    NaN where ``reason`` says why a value is missing (``""`` when none is).
    """

    compartment: str
    reason: str = ""


@dataclass(frozen=True)
class PkTimepoint:
    """One timepoint of the series: its image folder, time (min), depths (µm), overlay."""

    image_id: str
    time_min: float
    depths_um: tuple[float, ...]
    analysed: bool
    has_overlay: bool


@dataclass(frozen=True)
class SignalTable:
    """Mean drug signal per compartment (rows) and time (columns, min), over every depth.

    Each cell is the pixel-weighted mean of the depth planes' signals; NaN where the
    compartment was not seen at that time.
    """

    times_min: tuple[float, ...]
    compartments: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class PkDataset:
    """What the PK page shows of one dataset."""

    dataset_id: str
    model: str
    auc_method: str
    background_adu: float
    units: PkUnits
    timepoints: tuple[PkTimepoint, ...]
    nca: tuple[NcaRow, ...]
    signal: SignalTable
    plots: tuple[str, ...]
    tables: tuple[str, ...]
    warnings: tuple[str, ...]
    failures: tuple[str, ...]


def is_pk_dataset(store: ObjectStore, prefix: str) -> bool:
    """Whether the dataset at ``prefix`` (``""``: the store's root) is a skin-PK dataset."""
    return any(store.exists(child_key(prefix, name)) for name in (SERIES, NCA))


def list_plots(store: ObjectStore, prefix: str) -> dict[str, ObjectInfo]:
    """The PNG plots directly under ``<prefix>/pk/``, by file name (valid names only)."""
    base = child_key(prefix, PLOT_FOLDER) + "/"
    plots = {}
    for info in store.list(base):
        name = info.key[len(base) :]
        if "/" in name or not name.endswith(".png"):
            continue
        try:
            plots[validate_id(name)] = info
        except UnsafeKeyError:  # an odd name in the folder is skipped, never served
            logger.warning("skipping plot %s%s: not a valid name", base, name)
    return plots


def plot_key(store: ObjectStore, prefix: str, name: str) -> tuple[str, ObjectInfo]:
    """Key and listing entry of plot ``name``, only if the ``pk/`` listing holds it.

    Raises
    ------
    UnsafeKeyError
        When ``name`` is not a valid file name (``..``, ``/``, control characters).
    ObjectNotFoundError
        When no such plot is listed.
    """
    validate_id(name)
    info = list_plots(store, prefix).get(name)
    if info is None:
        raise ObjectNotFoundError(f"no plot {name!r} under {child_key(prefix, PLOT_FOLDER)}/")
    return info.key, info


def table_key(prefix: str, name: str) -> str:
    """Key of one downloadable PK table; :class:`ObjectNotFoundError` for any other name."""
    if name not in PK_TABLES:
        raise ObjectNotFoundError(f"no PK table {name!r}")
    return child_key(prefix, name)


def overlay_key(timepoints: tuple[PkTimepoint, ...], prefix: str, image_id: str) -> str:
    """Key of a timepoint's ``overlay.png``; the image must be a timepoint that has one."""
    validate_id(image_id)
    for tp in timepoints:
        if tp.image_id == image_id and tp.has_overlay:
            return child_key(child_key(prefix, image_id), OVERLAY)
    raise ObjectNotFoundError(f"no overlay for timepoint {image_id!r}")


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def parse_nca(data: bytes) -> tuple[NcaRow, ...]:
    """The rows of ``nca.csv`` (compartment + :data:`NCA_VALUES` + reason)."""
    table = pd.read_csv(io.BytesIO(data), keep_default_na=True)
    rows = []
    for record in table.to_dict(orient="records"):
        reason = record.get("reason")
        rows.append(
            NcaRow(
                compartment=str(record.get("compartment", "")),
                reason="" if reason is None or pd.isna(reason) else str(reason),
                **{column: _float(record.get(column)) for column in NCA_VALUES},
            )
        )
    return tuple(rows)


def signal_table(data: bytes) -> SignalTable:
    """Pixel-weighted mean signal per compartment and time from ``profiles.csv``.

    Columns ``time`` (min), ``depth`` (µm), ``compartment``, ``signal``, ``n_px``; rows with
    no pixels or no signal are left out of the means.
    """
    table = pd.read_csv(io.BytesIO(data))
    seen = table[(table["n_px"] > 0) & table["signal"].notna()]
    times = tuple(float(t) for t in sorted(table["time"].unique()))
    compartments = tuple(dict.fromkeys(str(c) for c in table["compartment"]))
    weighted = seen.assign(mass=seen["signal"] * seen["n_px"])
    sums = weighted.groupby(["compartment", "time"])[["mass", "n_px"]].sum()
    means = (sums["mass"] / sums["n_px"]).to_dict()
    values = tuple(tuple(float(means.get((c, t), math.nan)) for t in times) for c in compartments)
    return SignalTable(times, compartments, values)


def in_tissue_order(rows: tuple[NcaRow, ...], order: tuple[str, ...]) -> tuple[NcaRow, ...]:
    """NCA rows in the order of ``order`` (outside in, as ``profiles.csv`` lists them).

    ``nca.csv`` is sorted by name; compartments missing from ``order`` come last, by name.
    """
    rank = {name: n for n, name in enumerate(order)}
    return tuple(sorted(rows, key=lambda r: (rank.get(r.compartment, len(rank)), r.compartment)))


def _timepoints(
    series: dict[str, Any], image_files: dict[str, set[str]]
) -> tuple[PkTimepoint, ...]:
    timepoints = []
    for entry in series.get("timepoints") or []:
        image_id = str(entry.get("image_id", ""))
        try:
            validate_id(image_id)
        except UnsafeKeyError:  # a malformed entry is not shown (and never becomes a key)
            logger.warning("skipping timepoint with invalid id %r", image_id)
            continue
        timepoints.append(
            PkTimepoint(
                image_id=image_id,
                time_min=_float(entry.get("time_min")),
                depths_um=tuple(_float(d) for d in entry.get("depths_um") or ()),
                analysed=bool(entry.get("analysed", False)),
                has_overlay=OVERLAY in image_files.get(image_id, set()),
            )
        )
    return tuple(sorted(timepoints, key=lambda tp: tp.time_min))


def _failure_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    where = entry.get("image_id") or entry.get("source") or "?"
    return f"{where}: {entry.get('error') or entry.get('reason') or 'failed'}"


def _read_optional(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.read_bytes(key)
    except ObjectNotFoundError:
        return None


def _parsed(
    parse: Callable[[bytes], T], data: bytes | None, name: str, problems: list[str]
) -> T | None:
    """``parse(data)``, or None (and a note in ``problems``) when absent or unreadable."""
    if not data:
        return None
    try:
        return parse(data)
    except (KeyError, ValueError, pd.errors.ParserError) as err:  # shown, not a 500
        logger.warning("ignoring unreadable %s: %s", name, err)
        problems.append(f"{name} is unreadable and left out: {err}")
        return None


def _parse_series(data: bytes | None, dataset_id: str) -> dict[str, Any]:
    try:
        series = json.loads(data) if data else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        logger.warning("ignoring unreadable series.json of %s: %s", dataset_id, err)
        series = {}
    return series if isinstance(series, dict) else {}


def read_timepoints(
    store: ObjectStore, dataset_id: str, prefix: str, image_files: dict[str, set[str]]
) -> tuple[PkTimepoint, ...]:
    """The timepoints ``series.json`` lists (only that file is read), in time order."""
    series = _parse_series(_read_optional(store, child_key(prefix, SERIES)), dataset_id)
    return _timepoints(series, image_files)


def read_pk_dataset(
    store: ObjectStore, dataset_id: str, prefix: str, image_files: dict[str, set[str]]
) -> PkDataset:
    """Read a PK dataset's series, NCA table, signal table and plot list.

    Parameters
    ----------
    store : ObjectStore
        The store holding the dataset.
    dataset_id : str
        The (validated) dataset id, for display.
    prefix : str
        The dataset's key prefix (``""`` for a store that is one output folder).
    image_files : dict of str to set of str
        File names per image folder, from a listing (tells which timepoints have overlays).

    Raises
    ------
    ObjectNotFoundError
        When the dataset has neither ``series.json`` nor ``nca.csv``.
    """
    series_bytes = _read_optional(store, child_key(prefix, SERIES))
    nca_bytes = _read_optional(store, child_key(prefix, NCA))
    if series_bytes is None and nca_bytes is None:
        raise ObjectNotFoundError(f"dataset {dataset_id!r} is not a skin-PK dataset")
    series = _parse_series(series_bytes, dataset_id)
    found = series.get("parameters")
    params: dict[str, Any] = found if isinstance(found, dict) else {}
    calibrated = _float(params.get("calibration", 1.0)) != 1.0
    unit = params.get("unit") or ("calibrated units" if calibrated else "ADU")
    profiles = _read_optional(store, child_key(prefix, PROFILES))
    problems: list[str] = []
    signal = _parsed(signal_table, profiles, PROFILES, problems) or SignalTable((), (), ())
    nca = _parsed(parse_nca, nca_bytes, NCA, problems) or ()
    tables = tuple(name for name in PK_TABLES if store.exists(child_key(prefix, name)))
    return PkDataset(
        dataset_id=dataset_id,
        model=str(series.get("model") or ""),
        auc_method=str(params.get("auc_method") or ""),
        background_adu=_float(series.get("background_adu")),
        units=PkUnits(c=str(unit)),
        timepoints=_timepoints(series, image_files),
        nca=in_tissue_order(nca, signal.compartments),
        signal=signal,
        plots=tuple(sorted(list_plots(store, prefix), key=lambda n: (n != HEATMAP, n))),
        tables=tables,
        warnings=(*problems, *(str(w) for w in series.get("warnings") or ())),
        failures=tuple(_failure_text(f) for f in series.get("failures") or ()),
    )
