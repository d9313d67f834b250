"""The steps of the ``skin-pk`` pipeline, registered like the cytometry ones.

A series pipeline (``inputs: [series]``): its unit of work is one skin sample's time series,
so the runner puts one :class:`SeriesInput` in the workspace. The steps, in order:
``read_series`` → ``segment_compartments`` (2D U-Net per plane; the runner's ``on_result``
gets each timepoint while the next one is read, so memory stays that of one stack) →
``drug_profiles`` (detector level off, calibrated) → ``nca`` → ``pk_plots``.
The pure work is in :mod:`overnight.skin.pipeline`, :mod:`overnight.analysis` and
:mod:`overnight.skin.plots`; publishing is :mod:`overnight.pipeline.skin_pk`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from overnight.pipeline.registry import step
from overnight.skin.pipeline import (
    MeasuredSeries,
    TimepointResult,
    corrected_profiles,
    measure_timepoints,
    nca_tables,
)
from overnight.skin.series import SkinSeries, Timepoint, find_series

if TYPE_CHECKING:  # TensorFlow loads only in the step's setup
    from overnight.models.skin import SkinModel


@dataclass(frozen=True)
class SeriesInput:
    """What the runner gives a series pipeline: the series' folder (or file) and two hooks.

    ``stored_labels`` returns labels published earlier for a timepoint (reused, not
    predicted); ``on_result`` publishes each analysed timepoint.
    """

    path: Path
    stored_labels: Callable[[Timepoint], np.ndarray | None] | None = None
    on_result: Callable[[TimepointResult], None] | None = None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SegmentParams(_Params):
    """Which compartment model segments the planes."""

    model: str | None = Field(
        None, description="compartment model: folder, name or URI; None = shipped"
    )


class ProfileParams(_Params):
    """Detector level and calibration of the drug channel."""

    background_adu: float | None = Field(None, description="drug detector level; None = pre-dose")
    calibration: float = Field(1.0, gt=0, description="concentration per ADU")
    unit: str | None = Field(None, description="concentration unit after calibration")


class NcaParams(_Params):
    """How the NCA integrates."""

    auc_method: Literal["linlog", "linear"] = "linlog"


class LoadedSkinModel:
    """The compartment model with the version the results record (``skin@<digest>``)."""

    def __init__(self, model: SkinModel) -> None:
        self.model = model
        self.model_version = model.version


def _load_skin_model(params: SegmentParams) -> LoadedSkinModel:
    from overnight.models.skin import load_skin_model

    return LoadedSkinModel(load_skin_model(params.model))


@step("read_series", requires=("series",), provides=("skin_series",))
def read_series_step(series: SeriesInput, params: BaseModel, state: Any) -> SkinSeries:
    """Find the timepoint stacks and order them by time and depth."""
    return find_series(series.path)


@step(
    "segment_compartments",
    requires=("series", "skin_series"),
    provides=("measured",),
    params=SegmentParams,
    setup=_load_skin_model,
)
def segment_compartments_step(
    series: SeriesInput, skin_series: SkinSeries, params: SegmentParams, state: LoadedSkinModel
) -> MeasuredSeries:
    """Compartments per plane (2D U-Net) and the raw drug signal per compartment and depth."""
    return measure_timepoints(
        skin_series, state.model, on_result=series.on_result, stored_labels=series.stored_labels
    )


@step(
    "drug_profiles",
    requires=("measured",),
    provides=("profiles", "background_adu", "concentration_unit", "pk_warnings"),
    params=ProfileParams,
)
def drug_profiles_step(
    measured: MeasuredSeries, params: ProfileParams, state: Any
) -> tuple[pd.DataFrame, float, str | None, tuple[str, ...]]:
    """Drug profiles: detector level subtracted, calibrated; the unit they are in."""
    profiles, background, warnings = corrected_profiles(
        measured.raw_profiles,
        measured.levels,
        background_adu=params.background_adu,
        calibration=params.calibration,
    )
    unit = params.unit or ("calibrated units" if params.calibration != 1.0 else None)
    return profiles, background, unit, warnings


@step("nca", requires=("profiles",), provides=("nca", "nca_depth", "auc_method"), params=NcaParams)
def nca_step(
    profiles: pd.DataFrame, params: NcaParams, state: Any
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """NCA per compartment (pooled over depth) and per compartment × depth."""
    nca, nca_depth = nca_tables(profiles, params.auc_method)
    return nca, nca_depth, params.auc_method


@step(
    "pk_plots",
    requires=("profiles", "nca", "concentration_unit", "auc_method"),
    provides=("pk_plots",),
)
def pk_plots_step(
    profiles: pd.DataFrame,
    nca: pd.DataFrame,
    concentration_unit: str | None,
    auc_method: str,
    params: BaseModel,
    state: Any,
) -> dict[str, bytes]:
    """QC plots of the series: ``pk/<name>.png`` → PNG bytes (none without profiles)."""
    from overnight.skin import plots

    if not len(profiles):
        return {}
    unit = concentration_unit
    return {
        "pk/concentration_time.png": plots.concentration_time_png(profiles, nca, unit),
        "pk/depth_profiles.png": plots.depth_profiles_png(profiles, unit),
        "pk/depth_time_heatmap.png": plots.depth_time_heatmap_png(profiles, unit),
        "pk/nca_table.png": plots.nca_table_png(nca, unit, auc_method=auc_method),
    }
