"""Which model versions a dataset is analysed with: ``{"cells": "<version>", "pnp": ...}``.

A dataset (or a re-analysis) names model versions by model name; each becomes the ``model``
parameter (a registry reference ``<name>@<version>``, see :mod:`overnight.models.registry`)
of every pipeline step that loads a model of that kind, as step overrides. The steps then load
that version (cached on disk and in memory) and the result records it in ``versions``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from overnight.errors import ConfigError
from overnight.models.registry import check_name, check_version
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.learned_steps import CellModelParams, PnpModelParams
from overnight.pipeline.runner import PreparedPipeline

logger = logging.getLogger(__name__)

#: Model name → the parameter class of the steps that load a model of that kind.
MODEL_STEP_PARAMS: dict[str, type] = {"cells": CellModelParams, "pnp": PnpModelParams}


def check_models(models: Mapping[str, str]) -> dict[str, str]:
    """``models`` if every name is a known kind and every version a safe string."""
    for name, version in models.items():
        if name not in MODEL_STEP_PARAMS:
            raise ConfigError(
                f"model {name!r}: the pipeline's models are {sorted(MODEL_STEP_PARAMS)}"
            )
        check_name(name)
        check_version(version)
    return dict(models)


def model_overrides(pipeline: str, models: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Step overrides that make ``pipeline``'s model steps load ``models``' versions.

    Raises
    ------
    ConfigError
        When a named model is loaded by no step of the pipeline.
    """
    bound = load_pipeline(pipeline).steps
    overrides: dict[str, dict[str, Any]] = {}
    for name, version in check_models(models).items():
        steps = [b.spec.name for b in bound if isinstance(b.params, MODEL_STEP_PARAMS[name])]
        if not steps:
            raise ConfigError(f"pipeline {pipeline!r} has no step that loads a {name} model")
        for step_name in steps:
            overrides.setdefault(step_name, {})["model"] = f"{name}@{version}"
    return overrides


def merge_overrides(
    base: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``base`` with ``extra``'s parameters added step by step (``extra`` wins)."""
    merged = {step: dict(params) for step, params in base.items()}
    for step, params in extra.items():
        merged.setdefault(step, {}).update(params)
    return merged


#: Pipelines prepared with chosen model versions in this process, by (pipeline, models,
#: overrides); a worker that analyses several datasets keeps each set of models loaded once.
_PREPARED: dict[str, PreparedPipeline] = {}
_MAX_PREPARED = 4


def prepared_with_models(
    pipeline: str, models: Mapping[str, str], base: Mapping[str, Mapping[str, Any]]
) -> PreparedPipeline:
    """``pipeline`` set up with ``models``' versions on top of the ``base`` overrides."""
    overrides = merge_overrides(base, model_overrides(pipeline, models))
    key = json.dumps([pipeline, overrides], sort_keys=True)
    if key not in _PREPARED:
        if len(_PREPARED) >= _MAX_PREPARED:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = PreparedPipeline(load_pipeline(pipeline, overrides))
        logger.info("pipeline %s prepared with models %s", pipeline, dict(models))
    return _PREPARED[key]


def chosen_versions(models: Mapping[str, str]) -> dict[str, str]:
    """``models`` with ``latest``/``default`` replaced by the concrete versions they name now.

    Raises :class:`~overnight.errors.ModelNotFoundError` for a version neither shipped nor in
    the registry, naming the known ones.
    """
    from overnight.models.loading import concrete_reference

    return {
        name: concrete_reference(name, version).split("@", 1)[1]
        for name, version in check_models(models).items()
    }
