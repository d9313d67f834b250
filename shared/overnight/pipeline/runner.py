"""Run a validated pipeline on one image: set up steps once, then pass values step to step."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overnight.errors import StepError
from overnight.pipeline.definition import Pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineRun:
    """Everything the steps produced for one image, and how long each step took (s)."""

    values: Mapping[str, Any]
    timings_s: Mapping[str, float]


class PreparedPipeline:
    """A pipeline whose steps ran their one-off ``setup`` (model loading) in this process.

    Build one per process and call :meth:`run` for every image, so models load once.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._states: list[Any] = []
        for bound in pipeline.steps:
            start = time.perf_counter()
            state = bound.spec.setup(bound.params) if bound.spec.setup else None
            if bound.spec.setup:
                logger.debug(
                    "set up step %s in %.2f s", bound.spec.name, time.perf_counter() - start
                )
            self._states.append(state)

    def run(self, inputs: Mapping[str, Any], stage: str | None = None) -> PipelineRun:
        """Run the steps (of ``stage``, or all) in order on ``inputs``, e.g. ``{"stack": ...}``.

        A later stage gets the earlier stages' outputs it needs in ``inputs``.
        """
        missing = [name for name in self.pipeline.inputs if name not in inputs]
        if missing:
            raise StepError(f"pipeline {self.pipeline.name!r} needs inputs {missing}")
        workspace: dict[str, Any] = dict(inputs)
        timings: dict[str, float] = {}
        for bound, state in zip(self.pipeline.steps, self._states, strict=True):
            if not bound.in_stage(stage):
                continue
            lacking = [name for name in bound.spec.requires if name not in workspace]
            if lacking:
                raise StepError(
                    f"step {bound.spec.name!r} (stage {stage}) needs {lacking}: pass them as inputs"
                )
            start = time.perf_counter()
            produced = bound.spec.run(workspace, bound.params, state)
            timings[bound.spec.name] = time.perf_counter() - start
            workspace.update(produced)
        return PipelineRun(values=workspace, timings_s=timings)

    def state_of(self, step_name: str) -> Any:
        """What step ``step_name``'s ``setup`` returned (e.g. its loaded model); None if none."""
        for bound, state in zip(self.pipeline.steps, self._states, strict=True):
            if bound.spec.name == step_name:
                return state
        return None

    def params_of(self, step_name: str) -> Any:
        """The validated parameters of step ``step_name`` (None if the pipeline lacks it)."""
        for bound in self.pipeline.steps:
            if bound.spec.name == step_name:
                return bound.params
        return None

    def versions(self) -> dict[str, str]:
        """Step name → version, plus the model versions (and what ran them) steps report."""
        versions = {b.spec.name: b.spec.version for b in self.pipeline.steps}
        for bound, state in zip(self.pipeline.steps, self._states, strict=True):
            for field, suffix in (("model_version", "model"), ("inference", "inference")):
                value = getattr(state, field, None)
                if value:
                    versions[f"{bound.spec.name}.{suffix}"] = str(value)
        return versions
