"""The built-in steps of the digital-cytometry pipeline, registered as plug-ins.

Each wrapper only unpacks parameters and calls the pure function that does the work.
Steps that scale or threshold by a statistic of the whole field (``locate_cells``,
``detect_pnps`` and their learned twins) are made with :func:`field_step`: they also read
the optional workspace value :data:`FIELD_STATISTICS`, which a field analysed in blocks
carries (:mod:`overnight.pipeline.block_statistics`); without it they measure the image they
get, which is then the whole field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from overnight.imaging.stack import ImageStack
from overnight.pipeline.registry import NoParams, StepSpec, step
from overnight.steps import cells, classify, counting, flags, pnp, qc, tables
from overnight.steps.channels import ChannelRoles, select_channel
from overnight.steps.field_stats import FieldStatistics

DEFAULT_PIXEL_SIZE_UM = 0.2
#: The optional workspace value of a field's :class:`FieldStatistics` (absent: measure).
FIELD_STATISTICS = "field_statistics"
#: Statistics of nothing: every step measures its own image.
NO_STATISTICS = FieldStatistics()


def field_step(
    name: str,
    *,
    requires: tuple[str, ...],
    provides: tuple[str, ...],
    params: type[BaseModel] = NoParams,
    version: str = "1",
    setup: Callable[[Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], StepSpec]:
    """:func:`~overnight.pipeline.registry.step` for a step that also reads the field's statistics.

    ``func`` gets ``field_statistics``, the workspace's :data:`FIELD_STATISTICS` or
    :data:`NO_STATISTICS` when the runner put none there; the step still requires only
    ``requires``, so pipelines and plug-ins that never heard of it are unchanged.
    """

    def wrap(func: Callable[..., Any]) -> StepSpec:
        inner = step(
            name,
            requires=(*requires, FIELD_STATISTICS),
            provides=provides,
            params=params,
            version=version,
            setup=setup,
        )(func)

        def run(inputs: Mapping[str, Any], p: BaseModel, state: Any) -> Mapping[str, Any]:
            return inner.run({FIELD_STATISTICS: NO_STATISTICS, **inputs}, p, state)

        return dataclasses.replace(inner, requires=requires, run=run)

    return wrap


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def pixel_size_of(stack: ImageStack, fallback_um: float) -> float:
    """The stack's pixel size in µm, or ``fallback_um`` when the file does not say."""
    return stack.pixel_size_um or fallback_um


@step(
    "select_channels",
    requires=("stack",),
    provides=("cell_volume", "pnp_volume"),
    params=ChannelRoles,
)
def select_channels_step(
    stack: ImageStack, params: ChannelRoles, state: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Read/convert: the cell and PNP channels as ``ZYX`` float32."""
    return select_channel(stack, "cell", params), select_channel(stack, "pnp", params)


class LocateParams(_Params):
    """Parameters of ``locate_cells``."""

    smooth_px: float = Field(2.0, description="Gaussian smoothing before thresholding (px)")
    min_area_px: int = Field(200, description="smaller foreground objects are dropped (px²)")


@field_step(
    "locate_cells",
    requires=("cell_volume",),
    provides=("cell_image", "foreground"),
    params=LocateParams,
)
def locate_cells_step(
    cell_volume: np.ndarray,
    field_statistics: FieldStatistics,
    params: LocateParams,
    state: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Locate cells: focus-aware projection and Otsu foreground (the field's threshold)."""
    image = cells.focus_projection(cell_volume)
    foreground = cells.cell_foreground(
        image, params.smooth_px, params.min_area_px, field_statistics.cell_threshold
    )
    return image, foreground


class BoundaryParams(_Params):
    """Parameters of ``cell_boundaries``."""

    min_distance_px: int = Field(12, description="minimum distance between cell centres (px)")


@step("cell_boundaries", requires=("foreground",), provides=("cell_labels",), params=BoundaryParams)
def cell_boundaries_step(foreground: np.ndarray, params: BoundaryParams, state: Any) -> np.ndarray:
    """Cell boundaries: split touching cells by distance-transform watershed."""
    return cells.split_touching_cells(foreground, params.min_distance_px)


class ClassifyParams(_Params):
    """Parameters of ``classify_cells``."""

    types: tuple[classify.CellTypeRule, ...] = Field(
        classify.DEFAULT_TYPE_RULES, description="cell types in order, each with its size bound"
    )
    fallback_pixel_size_um: float = Field(
        DEFAULT_PIXEL_SIZE_UM, description="when the file has none"
    )


@step(
    "classify_cells",
    requires=("cell_labels", "stack"),
    provides=("cell_types",),
    params=ClassifyParams,
)
def classify_cells_step(
    cell_labels: np.ndarray, stack: ImageStack, params: ClassifyParams, state: Any
) -> classify.CellTypes:
    """Classify cell types by equivalent diameter."""
    size_um = pixel_size_of(stack, params.fallback_pixel_size_um)
    return classify.classify_by_size(cell_labels, size_um, params.types)


class DetectParams(_Params):
    """Parameters of ``detect_pnps``."""

    sigma_xy_px: float = Field(1.25, description="expected spot σ in x and y (px)")
    sigma_z_slices: float = Field(1.25, description="expected spot σ in z (slices)")
    threshold_sd: float = Field(
        5.0, description="detection threshold in robust SDs of the LoG response"
    )
    min_separation_px: int = Field(2, description="closer maxima merge into one spot (px)")


@field_step("detect_pnps", requires=("pnp_volume",), provides=("spots",), params=DetectParams)
def detect_pnps_step(
    pnp_volume: np.ndarray,
    field_statistics: FieldStatistics,
    params: DetectParams,
    state: Any,
) -> pnp.Spots:
    """Detect PNPs in 3D by Laplacian of Gaussian (the field's noise and background)."""
    return pnp.detect_spots_log(
        pnp_volume,
        params.sigma_xy_px,
        params.sigma_z_slices,
        params.threshold_sd,
        params.min_separation_px,
        field_statistics.spot_noise_sd,
        field_statistics.spot_background_adu,
    )


class CountParams(_Params):
    """Parameters of ``count_pnps``."""

    margin_px: float = Field(
        2.0, description="a spot this close outside a cell still belongs to it (px)"
    )


@step(
    "count_pnps",
    requires=("cell_labels", "spots"),
    provides=("particle_counts",),
    params=CountParams,
)
def count_pnps_step(
    cell_labels: np.ndarray, spots: pnp.Spots, params: CountParams, state: Any
) -> counting.ParticleCounts:
    """Assign PNPs to cells and count them per cell."""
    return counting.assign_particles(cell_labels, spots, params.margin_px)


class TablesParams(_Params):
    """Parameters of ``tables``."""

    fallback_pixel_size_um: float = Field(
        DEFAULT_PIXEL_SIZE_UM, description="when the file has none"
    )


@step(
    "tables",
    requires=("cell_labels", "cell_types", "particle_counts", "spots", "stack"),
    provides=("cells_table", "pnps_table"),
    params=TablesParams,
)
def tables_step(
    cell_labels: np.ndarray,
    cell_types: classify.CellTypes,
    particle_counts: counting.ParticleCounts,
    spots: pnp.Spots,
    stack: ImageStack,
    params: TablesParams,
    state: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables: ``cells.csv`` and ``pnps.csv`` rows."""
    size_um = pixel_size_of(stack, params.fallback_pixel_size_um)
    return (
        tables.cell_table(cell_labels, cell_types, particle_counts, size_um),
        tables.pnp_table(spots, particle_counts),
    )


class QcParams(_Params):
    """Parameters of ``qc_image``."""

    type_names: tuple[str, ...] = Field(
        ("lymphocyte", "monocyte"), description="legend order and colours"
    )
    max_side_px: int = Field(1024, description="larger fields are downsampled in the picture")


@step(
    "qc_image",
    requires=("cell_image", "cell_labels", "cells_table", "pnps_table", "stack"),
    provides=("qc_png",),
    params=QcParams,
)
def qc_image_step(
    cell_image: np.ndarray,
    cell_labels: np.ndarray,
    cells_table: pd.DataFrame,
    pnps_table: pd.DataFrame,
    stack: ImageStack,
    params: QcParams,
    state: Any,
) -> bytes:
    """QC image: outlines by type, PNPs, counts (PNG bytes)."""
    return qc.render_qc_png(
        cell_image,
        cell_labels,
        cells_table,
        pnps_table,
        params.type_names,
        stack.image_id,
        params.max_side_px,
    )


class FlagParams(_Params):
    """Parameters of ``qc_flags`` / ``qc_flags_ae``: where each QC signal raises its flag."""

    thresholds: flags.FlagThresholds = Field(default_factory=flags.FlagThresholds)
    fallback_pixel_size_um: float = Field(
        DEFAULT_PIXEL_SIZE_UM, description="when the file has none"
    )


#: What the QC flags read: both channels, the projection, the cells, their types, the spots.
QC_INPUTS = (
    "cell_volume",
    "pnp_volume",
    "cell_image",
    "cell_labels",
    "cell_types",
    "spots",
    "stack",
)


def qc_flags_of(
    values: dict[str, Any], params: FlagParams, confidence: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The ``qc`` entry of ``result.json`` from the :data:`QC_INPUTS` ``values``."""
    stack: ImageStack = values["stack"]
    return flags.qc_report(
        values["cell_volume"],
        values["pnp_volume"],
        values["cell_image"],
        values["cell_labels"],
        pixel_size_of(stack, params.fallback_pixel_size_um),
        np.asarray(values["cell_types"].confidence, float),
        np.asarray(values["spots"].intensity, float),
        confidence,
        params.thresholds,
        raw=stack.data,  # the channels are float by now: saturation is read on the file's dtype
    ).as_dict()


@step("qc_flags", requires=QC_INPUTS, provides=("qc",), params=FlagParams)
def qc_flags_step(params: FlagParams, state: Any, **values: Any) -> dict[str, Any]:
    """QC flags: say when the result is doubtful (dim cells or particles, odd sizes, focus)."""
    return qc_flags_of(values, params)
