"""Modules imported on first use: the libraries of the ``analysis`` extra.

The ingest API, the watcher and the dispatcher run in images without SciPy, scikit-image,
Pillow or Matplotlib (``pip install overnight`` without extras), yet they load pipeline
definitions, and with them the modules that define the steps. Those modules bind the
analysis libraries with :func:`lazy_module` / :func:`lazy_function`: the import happens when
a step first uses them, in a worker, which has them.

>>> ndi = lazy_module("scipy.ndimage")    # nothing imported yet
>>> ndi.label([[0, 1, 1]])[1]             # imported now
1
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: The extra that installs the modules bound lazily (pyproject.toml).
EXTRA = "analysis"


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{name} is not installed, and this step needs it: install overnight's "
            f"'{EXTRA}' extra (pip install 'overnight[{EXTRA}]'); the worker images have it, "
            "the ingest, dispatcher and qc-web images do not",
            name=err.name,
        ) from err


class LazyModule:
    """Stands for module ``name``; imports it at the first attribute access."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = _import(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r}, {state}>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports at first use (typed ``Any``)."""
    return LazyModule(name)


def lazy_function(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported at the first call."""
    lazy = LazyModule(module)

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(lazy, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported at the first call."
    return call
