"""Where models live and how they load: shipped defaults, other folders, object-store URIs.

A model reference is one of:

- ``None`` or ``""``: the shipped default of that kind (``models/cells``, ``models/pnp``);
- a folder path holding ``config.json`` and ``weights.weights.h5``;
- a name under the models folder (``nuclei-dsb2018``);
- an object-store URI (``s3://bucket/prefix``, ``file:///path``), copied once into a local
  cache folder (``OVERNIGHT_MODEL_CACHE``, default ``~/.cache/overnight/models``);
- a registry reference ``<name>@<version>`` (``cells@20261207-061500-3fa2b9c1``,
  ``cells@latest``, ``cells@default``): the shipped model when the version is its own, else
  the version published in the registry at ``OVERNIGHT_MODELS_URL``, cached on disk under
  ``<cache>/registry/<name>/<version>`` (see :mod:`overnight.models.registry`).

The models folder is ``OVERNIGHT_MODELS_DIR`` when set, else the repository's ``models/``.
Both are read through :class:`ModelSettings` (environment or config file), once per process.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field

from overnight.config import CommonSettings, load_settings
from overnight.errors import ModelNotFoundError
from overnight.models.config import CONFIG_FILE, CellModelConfig, PnpModelConfig, load_config
from overnight.models.registry import (
    WEIGHTS_FILE,
    fetch_version,
    parse_reference,
    registry_reference,
    resolve_version,
    version_of,
)
from overnight.storage import ObjectStore

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {"cells": "cells", "pnp": "pnp"}
ConfigT = TypeVar("ConfigT", CellModelConfig, PnpModelConfig)


class ModelSettings(CommonSettings):
    """Where models are found: the models folder and the cache of models fetched by URI."""

    config_section = "models"

    models_dir: Path | None = Field(
        None, description="Folder of the shipped models (default: the repository's models/)."
    )
    model_cache: Path | None = Field(
        None,
        description="Cache of models fetched from object-store URIs "
        "(default: ~/.cache/overnight/models).",
    )
    models_url: str | None = Field(
        None,
        description="Model registry (file:///path or s3://bucket/prefix) holding "
        "models/<name>/<version>/; unset: only the shipped models and folders resolve.",
    )
    inference_runtime: Literal["auto", "onnxruntime", "tensorflow"] = Field(
        "auto",
        description="What runs the networks: auto = ONNX Runtime on a CPU (1.6-2x faster "
        "than TensorFlow on AVX2), TensorFlow where it sees a GPU.",
    )
    inference_int8: bool = Field(
        True,
        description="Where ONNX Runtime runs, the PNP and cell networks run their int8 copies "
        "(models/pnp|cells/network.int8.onnx, used only if made from the same weights): "
        "~2-3x faster, hold-out accuracy within seed-to-seed noise "
        "(bench/results/accuracy*-int8*.md).",
    )


@lru_cache(maxsize=1)
def model_settings() -> ModelSettings:
    """The process's :class:`ModelSettings`, read once (``cache_clear()`` to read again)."""
    return load_settings(ModelSettings)


def models_root() -> Path:
    """The folder of shipped models (``OVERNIGHT_MODELS_DIR`` or the repository's ``models/``)."""
    return model_settings().models_dir or Path(__file__).resolve().parents[3] / "models"


def _cache_root() -> Path:
    cache = model_settings().model_cache
    return cache if cache is not None else Path.home() / ".cache" / "overnight" / "models"


def _fetch_uri(uri: str) -> Path:
    """Copy the model under ``uri`` (scheme://bucket/prefix) into the cache; its local folder."""
    from overnight.storage import open_store  # storage is only needed for remote models

    base, _, prefix = uri.partition("://")[2].partition("/")
    store_url = uri[: len(uri) - len(prefix)].rstrip("/")
    local = _cache_root() / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (local / CONFIG_FILE).is_file() and (local / WEIGHTS_FILE).is_file():
        return local
    store = open_store(store_url)
    keys = [info.key for info in store.list(prefix.rstrip("/") + "/" if prefix else "")]
    if not keys:
        raise ModelNotFoundError(f"{uri}: no objects under this prefix")
    local.mkdir(parents=True, exist_ok=True)
    for key in keys:
        name = key[len(prefix) :].lstrip("/") if prefix else key
        target = local / name
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, target)
    logger.info("model %s copied to %s (%s)", uri, local, base)
    return local


@lru_cache(maxsize=1)
def registry_store() -> ObjectStore | None:
    """The registry's store (``OVERNIGHT_MODELS_URL``), or None when no registry is set."""
    from overnight.storage import open_store

    settings = model_settings()
    return open_store(settings.models_url, settings) if settings.models_url else None


def shipped_version(name: str) -> str | None:
    """The version of the shipped model ``name`` (from its card), or None if none is shipped."""
    folder = models_root() / name
    return version_of(folder) if (folder / WEIGHTS_FILE).is_file() else None


def concrete_reference(name: str, version: str) -> str:
    """``name@<concrete version>`` for ``latest``/``default``/an explicit version (checked)."""
    return f"{name}@{resolve_version(registry_store(), name, version, shipped_version(name))}"


def registry_model_dir(name: str, version: str) -> Path:
    """The local folder of ``name@version``: the shipped folder or a cached registry copy."""
    default = shipped_version(name)
    concrete = resolve_version(registry_store(), name, version, default)
    if concrete == default:
        return models_root() / name
    store = registry_store()
    assert store is not None  # resolve_version found it published, so a registry is set
    return fetch_version(store, name, concrete, _cache_root() / "registry")


def resolve_model_dir(reference: str | None, kind: str) -> Path:
    """The local folder of the model ``reference`` (see the module docstring) of ``kind``."""
    if not reference:
        reference = DEFAULT_MODELS[kind]
    if "://" in reference:
        return _fetch_uri(reference)
    parsed = parse_reference(reference)
    if parsed is not None and not Path(reference).expanduser().is_dir():
        return registry_model_dir(*parsed)
    path = Path(reference).expanduser()
    if not path.is_dir() and not path.is_absolute():
        path = models_root() / reference
    if not (path / CONFIG_FILE).is_file():
        raise ModelNotFoundError(
            f"model {reference!r}: no {CONFIG_FILE} in {path}; "
            "run `make train` or give a model folder"
        )
    return path


def load_network(model_dir: Path, config_type: type[ConfigT]) -> tuple[ConfigT, object]:
    """Rebuild the network of ``model_dir`` from its config and load its weights."""
    from overnight.models.unet import build_unet

    config = load_config(model_dir)
    if not isinstance(config, config_type):
        raise ModelNotFoundError(f"{model_dir}: a {config.kind!r} model, not the kind asked for")
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"{model_dir}: no {WEIGHTS_FILE}")
    network = build_unet(config.unet, name=config.kind)
    network.load_weights(weights)
    return config, network


def model_version(model_dir: Path) -> str:
    """``<name>@<version>``: what a result records (a registry reference).

    A registry copy names itself (its ``published.json``); any other folder is named by its
    folder name and :func:`~overnight.models.registry.version_of` (card time, weights digest).
    """
    return registry_reference(model_dir) or f"{model_dir.name}@{version_of(model_dir)}"
