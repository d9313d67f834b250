"""Pipelines as YAML lists of steps with parameters, checked before any image is read.

A pipeline file looks like::

    name: cytometry
    version: 1
    inputs: [stack]            # what the runner puts in the workspace
    steps:
      - step: select_channels
        params: {channels: {cell: 0, pnp: 1}}
      - step: locate_cells
      ...

Built-in pipelines live in ``overnight/pipeline/builtin/<name>.yaml`` and are loaded by
name; any other value is read as a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from overnight.errors import ConfigError, StepError
from overnight.pipeline.registry import StepSpec, get_step

BUILTIN_PACKAGE = "overnight.pipeline.builtin"


class StepConfig(BaseModel):
    """One entry of a pipeline file: which step, with which parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str
    params: dict[str, Any] = Field(default_factory=dict)
    stages: tuple[str, ...] = Field(
        (), description="queue stages that run this step (e.g. segmentation, counting); () = all"
    )


class PipelineConfig(BaseModel):
    """A pipeline file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = 1
    description: str = ""
    inputs: tuple[str, ...] = ("stack",)
    steps: tuple[StepConfig, ...]


class BoundStep(BaseModel):
    """A step resolved from the registry with its validated parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: StepSpec
    params: BaseModel
    stages: tuple[str, ...] = ()

    def in_stage(self, stage: str | None) -> bool:
        """Whether this step runs in ``stage`` (None = the whole pipeline at once)."""
        return stage is None or not self.stages or stage in self.stages


class Pipeline(BaseModel):
    """A validated pipeline: every step exists, its parameters parse, its inputs are provided."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    version: int
    inputs: tuple[str, ...]
    steps: tuple[BoundStep, ...]

    @property
    def stages(self) -> tuple[str, ...]:
        """The queue stages in order of first appearance (empty for a one-stage pipeline)."""
        seen: dict[str, None] = {}
        for bound in self.steps:
            seen.update(dict.fromkeys(bound.stages))
        return tuple(seen)

    @property
    def is_series(self) -> bool:
        """Whether the pipeline works on a time series (``inputs: [series]``), not per image."""
        return list(self.inputs) == ["series"]

    @property
    def channel_roles(self) -> tuple[str, ...]:
        """Channel roles in channel order (e.g. ``("cell", "pnp")``), from the channel step."""
        for bound in self.steps:
            channels = getattr(bound.params, "channels", None)
            if isinstance(channels, dict) and channels:
                by_index = {index: role for role, index in channels.items()}
                return tuple(by_index.get(i, f"channel {i}") for i in range(max(by_index) + 1))
        return ("image",)

    @property
    def cell_type_names(self) -> tuple[str, ...]:
        """The configured cell types, in order, from the first step that has ``types``."""
        for bound in self.steps:
            types = getattr(bound.params, "types", None)
            if types:
                return tuple(getattr(t, "name", t) for t in types)
        return ()

    def describe(self) -> dict[str, Any]:
        """Step names, versions and parameters, for provenance (``result.json``)."""
        return {
            "name": self.name,
            "version": self.version,
            "steps": [
                {
                    "step": s.spec.name,
                    "version": s.spec.version,
                    "params": s.params.model_dump(mode="json"),
                }
                for s in self.steps
            ],
        }


def builtin_pipelines() -> list[str]:
    """Names of the pipelines shipped with overnight."""
    root = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_pipeline_text(name_or_path: str | Path) -> tuple[str, str]:
    candidate = resources.files(BUILTIN_PACKAGE) / f"{name_or_path}.yaml"
    if isinstance(name_or_path, str) and candidate.is_file():
        return candidate.read_text(encoding="utf-8"), f"built-in pipeline {name_or_path!r}"
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"pipeline {str(name_or_path)!r} is neither a built-in "
            f"({', '.join(builtin_pipelines())}) nor a YAML file"
        )
    return path.read_text(encoding="utf-8"), str(path)


def is_series_pipeline(name_or_path: str | Path) -> bool:
    """Whether a pipeline works on a time series (``inputs: [series]``) rather than per image.

    Series pipelines (``skin-pk``) are run by ``overnight pk run``, not the per-image runner.
    """
    text, _ = _read_pipeline_text(name_or_path)
    try:
        inputs = (yaml.safe_load(text) or {}).get("inputs", ())
    except yaml.YAMLError:
        return False
    return list(inputs) == ["series"]


def load_pipeline(
    name_or_path: str | Path, overrides: dict[str, dict[str, Any]] | None = None
) -> Pipeline:
    """Read, validate and bind a pipeline; ``overrides`` maps step name → parameter updates."""
    text, where = _read_pipeline_text(name_or_path)
    try:
        config = PipelineConfig.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as err:
        raise ConfigError(f"{where} is not a valid pipeline: {err}") from err
    return bind_pipeline(config, overrides or {}, where)


def bind_pipeline(
    config: PipelineConfig, overrides: dict[str, dict[str, Any]], where: str = "pipeline"
) -> Pipeline:
    """Resolve each step, validate its parameters and check the data flow."""
    available = set(config.inputs)
    bound = []
    for entry in config.steps:
        spec = get_step(entry.step)
        raw = {**entry.params, **overrides.get(entry.step, {})}
        try:
            params = spec.params_model.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(f"{where}: parameters of step {entry.step!r}: {err}") from err
        missing = [name for name in spec.requires if name not in available]
        if missing:
            raise StepError(
                f"{where}: step {entry.step!r} needs {missing}, which no earlier step provides"
            )
        available.update(spec.provides)
        bound.append(BoundStep(spec=spec, params=params, stages=entry.stages))
    unknown = set(overrides) - {s.step for s in config.steps}
    if unknown:
        raise ConfigError(
            f"{where}: parameter overrides name steps not in the pipeline: {sorted(unknown)}"
        )
    return Pipeline(
        name=config.name, version=config.version, inputs=config.inputs, steps=tuple(bound)
    )
