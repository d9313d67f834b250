"""The model registry: publish, list, resolve (latest, default, a version), cache, defaults."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from overnight.errors import ConfigError, ModelNotFoundError
from overnight.models import loading
from overnight.models.registry import (
    PUBLISHED_FILE,
    WEIGHTS_FILE,
    fetch_version,
    list_models,
    list_versions,
    parse_reference,
    publish_model,
    resolve_version,
    version_of,
)
from overnight.storage import LocalStore, open_store

REPO = Path(__file__).resolve().parents[2]


def _model(folder: Path, weights: bytes, created: str) -> Path:
    """A model folder: the shipped cell config, the given weight bytes, a card with ``created``."""
    folder.mkdir(parents=True)
    shutil.copy(REPO / "models" / "cells" / "config.json", folder / "config.json")
    (folder / WEIGHTS_FILE).write_bytes(weights)
    (folder / "card.json").write_text(json.dumps({"name": folder.name, "created": created}))
    (folder / "checkpoint.weights.h5").write_bytes(b"left over by training")
    return folder


@pytest.fixture()
def registry(tmp_path: Path) -> LocalStore:
    store = open_store(str(tmp_path / "registry"))
    assert isinstance(store, LocalStore)
    return store


def test_version_is_card_time_and_weights_digest(tmp_path: Path) -> None:
    folder = _model(tmp_path / "m", b"weights-1", "2026-12-07T06:15:00+00:00")
    version = version_of(folder)
    assert version.startswith("20261207-061500-") and len(version) == 24
    other = _model(tmp_path / "n", b"weights-2", "2026-12-07T06:15:00+00:00")
    assert version_of(other) != version  # same time, other weights: another version


def test_publish_then_list_and_resolve(tmp_path: Path, registry: LocalStore) -> None:
    old = publish_model(registry, _model(tmp_path / "a", b"one", "2026-12-01T00:00:00Z"), "cells")
    new = publish_model(registry, _model(tmp_path / "b", b"two", "2026-12-05T00:00:00Z"), "cells")
    assert [e.version for e in list_versions(registry, "cells")] == [old.version, new.version]
    assert registry.exists(f"models/cells/{new.version}/config.json")
    assert not registry.exists(f"models/cells/{new.version}/checkpoint.weights.h5")
    assert list(list_models(registry)) == ["cells"]
    assert resolve_version(registry, "cells", "latest", "shipped-v") == new.version
    assert resolve_version(registry, "cells", old.version, "shipped-v") == old.version
    assert resolve_version(registry, "cells", "default", "shipped-v") == "shipped-v"
    with pytest.raises(ModelNotFoundError, match=old.version):  # names the known versions
        resolve_version(registry, "cells", "20990101-000000-deadbeef", "shipped-v")
    assert publish_model(registry, tmp_path / "b", "cells") == new  # again: the same version


def test_latest_without_registry_is_the_default() -> None:
    assert resolve_version(None, "cells", "latest", "shipped-v") == "shipped-v"
    with pytest.raises(ModelNotFoundError, match="OVERNIGHT_MODELS_URL"):
        resolve_version(None, "cells", "20990101-000000-deadbeef", "shipped-v")


def test_fetch_caches_by_version(tmp_path: Path, registry: LocalStore) -> None:
    entry = publish_model(registry, _model(tmp_path / "a", b"one", "2026-12-01T00:00:00Z"), "cells")
    cache = tmp_path / "cache"
    local = fetch_version(registry, "cells", entry.version, cache)
    assert local == cache / "cells" / entry.version
    assert (local / WEIGHTS_FILE).read_bytes() == b"one" and (local / PUBLISHED_FILE).is_file()
    shutil.rmtree(registry.root / "models")  # the registry is gone: the cached copy still serves
    assert fetch_version(registry, "cells", entry.version, cache) == local
    with pytest.raises(ModelNotFoundError, match="no published model"):
        fetch_version(registry, "cells", "20990101-000000-deadbeef", cache)


def test_bad_names_and_versions_are_refused(tmp_path: Path, registry: LocalStore) -> None:
    folder = _model(tmp_path / "a", b"one", "2026-12-01T00:00:00Z")
    with pytest.raises(ConfigError, match="model name"):
        publish_model(registry, folder, "../cells")
    assert parse_reference("cells@../../etc") is None
    assert parse_reference("cells@20261201-000000-abcdef01") == (
        "cells",
        "20261201-000000-abcdef01",
    )
    assert parse_reference("/models/cells") is None


@pytest.fixture()
def models_url(
    registry: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``OVERNIGHT_MODELS_URL`` pointing at ``registry``, a fresh cache; settings read anew."""
    monkeypatch.setenv("OVERNIGHT_MODELS_URL", registry.url)
    monkeypatch.setenv("OVERNIGHT_MODEL_CACHE", str(tmp_path / "model-cache"))
    loading.model_settings.cache_clear()
    loading.registry_store.cache_clear()
    yield registry.url
    loading.model_settings.cache_clear()
    loading.registry_store.cache_clear()


def test_shipped_models_are_the_defaults() -> None:
    shipped = loading.models_root() / "cells"
    version = loading.shipped_version("cells")
    assert version == version_of(shipped)
    assert loading.resolve_model_dir("cells@default", "cells") == shipped
    assert loading.resolve_model_dir(f"cells@{version}", "cells") == shipped
    assert loading.model_version(shipped) == f"cells@{version}"


def test_references_resolve_through_the_registry(
    models_url: str, registry: LocalStore, tmp_path: Path
) -> None:
    entry = publish_model(registry, _model(tmp_path / "a", b"one", "2026-12-01T00:00:00Z"), "cells")
    local = loading.resolve_model_dir("cells@latest", "cells")
    assert local == tmp_path / "model-cache" / "registry" / "cells" / entry.version
    assert loading.model_version(local) == entry.reference  # what a result records
    assert loading.concrete_reference("cells", "latest") == entry.reference
    assert loading.resolve_model_dir("cells@default", "cells") == loading.models_root() / "cells"
