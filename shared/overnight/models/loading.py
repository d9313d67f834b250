"""Where models live and how they load: shipped defaults, other folders, object-store URIs.

A model reference is one of:

- ``None`` or ``""``: the shipped default of that kind (``models/cells``, ``models/pnp``);
- a folder path holding ``config.json`` and ``weights.weights.h5``;
- a name under the models folder (``nuclei-dsb2018``);
- an object-store URI (``s3://bucket/prefix``, ``file:///path``), copied once into a local
  cache folder (``OVERNIGHT_MODEL_CACHE``, default ``~/.cache/overnight/models``).

The models folder is ``OVERNIGHT_MODELS_DIR`` when set, else the repository's ``models/``.
Both are read through :class:`ModelSettings` (environment or config file), once per process.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import Field

from overnight.config import CommonSettings, load_settings
from overnight.errors import ModelNotFoundError
from overnight.models.config import CONFIG_FILE, CellModelConfig, PnpModelConfig, load_config

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.weights.h5"
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


def resolve_model_dir(reference: str | None, kind: str) -> Path:
    """The local folder of the model ``reference`` (see the module docstring) of ``kind``."""
    if not reference:
        reference = DEFAULT_MODELS[kind]
    if "://" in reference:
        return _fetch_uri(reference)
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
    """``<folder name>@<first 12 hex of the weights' SHA-256>``: what a result records."""
    digest = hashlib.sha256((model_dir / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]
    return f"{model_dir.name}@{digest}"
