"""Pipeline steps as named plug-ins with declared inputs, outputs and parameters.

A step wraps one pure library function (:mod:`overnight.steps`, :mod:`overnight.analysis`).
It names the values it reads from the pipeline's workspace (``requires``) and the values it
adds (``provides``), and validates its parameters with a pydantic model. :func:`step` only
builds a :class:`StepSpec`; the registry collects them explicitly: the built-in ones from the
modules in :data:`BUILTIN_MODULES`, a lab member's through the ``overnight.steps``
entry-point group, with no change to the library::

    # pyproject.toml of the lab's package
    [project.entry-points."overnight.steps"]
    ring_intensity = "mylab.steps:ring_intensity"   # a StepSpec made with @step
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict

from overnight.errors import StepError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "overnight.steps"
#: Modules whose :class:`StepSpec` attributes are the built-in steps.
BUILTIN_MODULES = (
    "overnight.pipeline.builtin_steps",  # classical digital cytometry
    "overnight.pipeline.learned_steps",  # learned cytometry (TensorFlow loads only in setup)
    "overnight.pipeline.skin_steps",  # skin PK, a series pipeline
)


class NoParams(BaseModel):
    """Parameters of a step that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StepSpec:
    """A registered step: its name, version, data flow, parameter model and functions.

    ``run(inputs, params, state)`` gets the required workspace values by name and returns
    the provided values as a dict. ``setup(params)`` runs once per process (e.g. loads a
    model) and its result is passed to every ``run`` as ``state``.
    """

    name: str
    version: str
    requires: tuple[str, ...]
    provides: tuple[str, ...]
    params_model: type[BaseModel]
    run: Callable[[Mapping[str, Any], BaseModel, Any], Mapping[str, Any]]
    setup: Callable[[BaseModel], Any] | None = None
    description: str = ""


_REGISTRY: dict[str, StepSpec] = {}
_builtins_loaded = False
_entry_points_loaded = False


def register(spec: StepSpec) -> StepSpec:
    """Add ``spec`` to the registry; a second step with the same name is an error."""
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing is not spec:
        raise StepError(f"two steps are named {spec.name!r}; rename one of them")
    _REGISTRY[spec.name] = spec
    return spec


def step(
    name: str,
    *,
    requires: tuple[str, ...],
    provides: tuple[str, ...],
    params: type[BaseModel] = NoParams,
    version: str = "1",
    setup: Callable[[Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], StepSpec]:
    """Turn ``func(**inputs, params=..., state=...)`` into a :class:`StepSpec`.

    ``func`` returns one value when the step provides one name, else a tuple in the order
    of ``provides``.
    """

    def wrap(func: Callable[..., Any]) -> StepSpec:
        def run(inputs: Mapping[str, Any], p: BaseModel, state: Any) -> Mapping[str, Any]:
            result = func(**{k: inputs[k] for k in requires}, params=p, state=state)
            values = (result,) if len(provides) == 1 else tuple(result)
            if len(values) != len(provides):
                raise StepError(f"step {name!r} returned {len(values)} values, expected {provides}")
            return dict(zip(provides, values, strict=True))

        doc = (func.__doc__ or "").strip().splitlines()
        return StepSpec(
            name=name,
            version=version,
            requires=requires,
            provides=provides,
            params_model=params,
            run=run,
            setup=setup,
            description=doc[0] if doc else "",
        )

    return wrap


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module_name in BUILTIN_MODULES:
        module = import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, StepSpec):
                register(value)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception as err:  # a broken plug-in must not break the others
            logger.error("cannot load step plug-in %s (%s): %s", ep.name, ep.value, err)
            continue
        if not isinstance(spec, StepSpec):
            logger.error(
                "step plug-in %s (%s) is not a StepSpec made with @step", ep.name, ep.value
            )
            continue
        register(spec)


def get_step(name: str) -> StepSpec:
    """The step called ``name``, from the built-ins or an installed plug-in."""
    _load_builtins()
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise StepError(f"unknown step {name!r}; known steps: {known}") from None


def available_steps() -> dict[str, StepSpec]:
    """Every step known now: built-ins and installed plug-ins, by name."""
    _load_builtins()
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))
