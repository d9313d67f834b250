"""The learned steps of the digital-cytometry pipeline, behind the classical steps' interfaces.

``locate_cells_ae`` runs the cell model once per image and also hands its class
probabilities and features on (``cell_prediction``); ``cell_boundaries_ae`` turns them into
instance labels; ``classify_cells_ae`` gives types with the model's classifier;
``detect_pnps_unet`` finds particles with the 3D U-Net. Each step loads its model in
``setup`` (once per process, shared between the steps that name the same model).

Parameters name a model by folder, by name under the models folder, or by object-store URI;
empty means the shipped default (see :mod:`overnight.models.loading`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.errors import StepError
from overnight.imaging.stack import ImageStack
from overnight.pipeline.builtin_steps import QC_INPUTS, FlagParams, field_step, qc_flags_of
from overnight.pipeline.registry import step
from overnight.steps import cells, classify, flags, pnp
from overnight.steps.field_stats import FieldStatistics

DEFAULT_PIXEL_SIZE_UM = 0.2


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CellModelParams(_Params):
    """Which cell model a step uses."""

    model: str = Field(
        "", description="cell model folder, name under models/, or URI; '' = shipped"
    )


class PnpModelParams(_Params):
    """Which particle model a step uses."""

    model: str = Field(
        "", description="particle model folder, name under models/, or URI; '' = shipped"
    )


class TypeLabel(_Params):
    """One cell type of the label set (its order is the legend's)."""

    name: str


class ClassifyAeParams(CellModelParams):
    """Which cell model classifies, the label set expected of it, and a pixel-size fallback."""

    types: tuple[TypeLabel, ...] = Field(
        (TypeLabel(name="lymphocyte"), TypeLabel(name="monocyte")),
        description="the label set; must be the model's (it was trained on these)",
    )
    fallback_pixel_size_um: float = Field(
        DEFAULT_PIXEL_SIZE_UM, description="when the file has none"
    )


class LoadedModel:
    """A loaded model with what the pipeline records of it.

    ``model_version`` is ``name@weights-digest``; ``inference`` says what runs its network
    (``onnxruntime``, ``onnxruntime-int8`` or ``tensorflow``), recorded beside it in
    ``result.json``'s ``versions`` (``<step>.inference``).
    """

    def __init__(self, model: Any, model_version: str, inference: str = "") -> None:
        self.model = model
        self.model_version = model_version
        self.inference = inference


@lru_cache(maxsize=8)
def _load(kind: str, reference: str) -> LoadedModel:
    from overnight.models.cells import CellModel
    from overnight.models.loading import model_version, resolve_model_dir
    from overnight.models.pnp import PnpModel

    model_dir = resolve_model_dir(reference, kind)
    from overnight.models.runtime import inference_runtime

    model = CellModel.load(model_dir) if kind == "cells" else PnpModel.load(model_dir)
    inference = inference_runtime() + ("-int8" if getattr(model, "int8", False) else "")
    return LoadedModel(model, model_version(model_dir), inference)


def _setup_cells(params: CellModelParams) -> LoadedModel:
    return _load("cells", params.model)


def _setup_classifier(params: ClassifyAeParams) -> LoadedModel:
    loaded = _setup_cells(params)
    classifier = loaded.model.classifier
    wanted = tuple(t.name for t in params.types)
    if classifier is None or classifier.names != wanted:
        have = classifier.names if classifier is not None else ()
        raise StepError(
            f"classify_cells_ae: the cell model knows types {list(have)}, the pipeline asks for "
            f"{list(wanted)}; retrain the model on data with those types or change the types"
        )
    return loaded


def _setup_pnp(params: PnpModelParams) -> LoadedModel:
    return _load("pnp", params.model)


@field_step(
    "locate_cells_ae",
    requires=("cell_volume",),
    provides=("cell_image", "foreground", "cell_prediction"),
    params=CellModelParams,
    setup=_setup_cells,
)
def locate_cells_ae_step(
    cell_volume: np.ndarray,
    field_statistics: FieldStatistics,
    params: CellModelParams,
    state: LoadedModel,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Locate cells with the cell model: projection, foreground, class probabilities.

    The projection is normalised by the field's percentiles (``field_statistics.cell_range``
    when the field is analysed in blocks).
    """
    from overnight.models.cells import CellPrediction

    model = state.model
    image = cells.focus_projection(cell_volume)
    low_pct, high_pct = model.config.normalise_percentiles
    normalised = cells.normalise_intensity(image, low_pct, high_pct, field_statistics.cell_range)
    probabilities, features = model.probabilities(normalised)
    foreground = 1.0 - probabilities[..., 0] > model.config.foreground_threshold
    prediction = CellPrediction(probabilities, features.astype(np.float16), np.zeros(0, np.uint32))
    return image, foreground, prediction


@step(
    "cell_boundaries_ae",
    requires=("cell_prediction",),
    provides=("cell_labels",),
    params=CellModelParams,
    setup=_setup_cells,
)
def cell_boundaries_ae_step(
    cell_prediction: Any, params: CellModelParams, state: LoadedModel
) -> np.ndarray:
    """Cell boundaries: seeded watershed of the model's interiors (separates touching cells)."""
    from overnight.models.cells import instance_labels

    return instance_labels(cell_prediction.probabilities, state.model.config)


@step(
    "classify_cells_ae",
    requires=("cell_labels", "cell_prediction", "stack"),
    provides=("cell_types",),
    params=ClassifyAeParams,
    setup=_setup_classifier,
)
def classify_cells_ae_step(
    cell_labels: np.ndarray,
    cell_prediction: Any,
    stack: ImageStack,
    params: ClassifyAeParams,
    state: LoadedModel,
) -> classify.CellTypes:
    """Classify cell types with the model's learned classifier (shape and network features)."""
    size_um = stack.pixel_size_um or params.fallback_pixel_size_um
    ids, names, confidence = state.model.classify(
        cell_labels, cell_prediction.features.astype(np.float32), size_um
    )
    return classify.CellTypes(cell_ids=ids, names=names, confidence=confidence)


@field_step(
    "detect_pnps_unet",
    requires=("pnp_volume",),
    provides=("spots",),
    params=PnpModelParams,
    setup=_setup_pnp,
)
def detect_pnps_unet_step(
    pnp_volume: np.ndarray,
    field_statistics: FieldStatistics,
    params: PnpModelParams,
    state: LoadedModel,
) -> pnp.Spots:
    """Detect PNPs with the 3D U-Net (density → spots; close pairs counted by brightness).

    The input is scaled by the field's background and spot brightness (``field_statistics``
    when the field is analysed in blocks).
    """
    from overnight.models.pnp import PnpScale

    background, peak = field_statistics.pnp_background_adu, field_statistics.pnp_spot_peak_adu
    scale = PnpScale(background, peak) if background is not None and peak is not None else None
    return state.model.detect(pnp_volume, scale)


@step("cell_confidence", requires=("cell_prediction",), provides=("cell_confidence",))
def cell_confidence_step(cell_prediction: Any, params: Any, state: Any) -> np.ndarray:
    """The cell network's confidence: mean top-class probability, share of uncertain pixels."""
    return np.asarray(flags.network_confidence(cell_prediction.probabilities), np.float64)


@step(
    "qc_flags_ae",
    requires=(*QC_INPUTS, "cell_confidence"),
    provides=("qc",),
    params=FlagParams,
)
def qc_flags_ae_step(
    cell_confidence: np.ndarray, params: FlagParams, state: Any, **values: Any
) -> dict[str, Any]:
    """QC flags of the learned pipeline: also the cell network's own confidence."""
    mean, uncertain = (float(v) for v in cell_confidence)
    return qc_flags_of(values, params, (mean, uncertain))
