"""The model registry: versioned models in any object store, and the shipped defaults.

Layout in the registry's store (``OVERNIGHT_MODELS_URL``, e.g. ``s3://lab/overnight``)::

    models/<name>/<version>/config.json, weights.weights.h5, card.json, classifier.json, ...
    models/<name>/<version>/published.json    written last: a version exists once it does

A **version** is ``<card created, YYYYMMDD-HHMMSS>-<first 8 hex of the weights' SHA-256>``:
it sorts by training time and names the weights, so two models never share one. The models
shipped in the image (the repository's ``models/``) are the defaults; their version comes from
their own card, so ``cells@<shipped version>`` resolves without any registry.

A model reference ``<name>@<version>`` (``cells@20261207-061500-3fa2b9c1``, ``cells@latest``,
``cells@default``) is what results record in their provenance and what a dataset or a
re-analysis names. Fetched versions are cached on local disk under ``<cache>/<name>/<version>``
(a version never changes, so the cache needs no invalidation) and, by the pipeline steps, in
memory per reference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from overnight.errors import ConfigError, ModelNotFoundError
from overnight.models.config import CONFIG_FILE
from overnight.storage import ObjectStore, join_key

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.weights.h5"
CARD_FILE = "card.json"
#: Written last into ``models/<name>/<version>/`` (and into a cached copy): the commit marker.
PUBLISHED_FILE = "published.json"
REGISTRY_PREFIX = "models"
LATEST = "latest"
DEFAULT = "default"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: Files of a model folder that are never published (training leftovers).
_SKIPPED = frozenset({"checkpoint.weights.h5"})


@dataclass(frozen=True)
class ModelVersion:
    """One published model: name, version and what its card says about it.

    ``created`` is the card's UTC ISO time; ``parent`` the reference it was trained from
    (empty when unknown); ``key`` the registry prefix ``models/<name>/<version>``.
    """

    name: str
    version: str
    created: str
    parent: str = ""

    @property
    def key(self) -> str:
        """``models/<name>/<version>``: the version's prefix in the registry's store."""
        return version_prefix(self.name, self.version)

    @property
    def reference(self) -> str:
        """``<name>@<version>``: what results record and datasets name."""
        return f"{self.name}@{self.version}"


def check_name(name: str) -> str:
    """Return ``name`` if it is a model name (lower-case letters, digits, ``-``, ``_``)."""
    if not _NAME.match(name):
        raise ConfigError(f"model name {name!r}: use 1-64 lower-case letters, digits, - or _")
    return name


def check_version(version: str) -> str:
    """Return ``version`` if it is a safe version string (no ``/``, no ``..``)."""
    if not _VERSION.match(version) or ".." in version:
        raise ConfigError(f"model version {version!r}: use letters, digits, '.', '-' or '_'")
    return version


def version_prefix(name: str, version: str) -> str:
    """``models/<name>/<version>``."""
    return join_key(REGISTRY_PREFIX, check_name(name), check_version(version))


def parse_reference(reference: str) -> tuple[str, str] | None:
    """``(name, version)`` of a registry reference ``name@version``; None for anything else.

    Examples
    --------
    >>> parse_reference("cells@20261207-061500-3fa2b9c1")
    ('cells', '20261207-061500-3fa2b9c1')
    >>> parse_reference("models/cells") is None
    True
    """
    name, at, version = reference.partition("@")
    if not at or "/" in reference or not _NAME.match(name) or not _VERSION.match(version):
        return None
    return name, version


def weights_digest(model_dir: Path) -> str:
    """SHA-256 (hex) of the folder's weights file; :class:`ModelNotFoundError` if absent."""
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"{model_dir}: no {WEIGHTS_FILE}; not a model folder")
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card(model_dir: Path) -> dict[str, object]:
    path = Path(model_dir) / CARD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def version_of(model_dir: Path) -> str:
    """The version of a model folder: its card's creation time and its weights' digest.

    A folder without a card (or without ``created``) takes the weights file's mtime.
    """
    created = str(_card(model_dir).get("created") or "")
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        mtime = (Path(model_dir) / WEIGHTS_FILE).stat().st_mtime
        when = datetime.fromtimestamp(mtime, UTC)
    return f"{when.astimezone(UTC):%Y%m%d-%H%M%S}-{weights_digest(model_dir)[:8]}"


def describe(model_dir: Path, name: str) -> ModelVersion:
    """The :class:`ModelVersion` a model folder would be published as."""
    card = _card(model_dir)
    return ModelVersion(
        name=check_name(name),
        version=version_of(model_dir),
        created=str(card.get("created") or ""),
        parent=str(card.get("parent_model") or card.get("initial_weights") or ""),
    )


def publish_model(store: ObjectStore, model_dir: Path, name: str) -> ModelVersion:
    """Put the model folder ``model_dir`` into the registry as ``name``; its version.

    Every file of the folder is written under ``models/<name>/<version>/``, then
    ``published.json`` (exclusively: publishing the same version twice is a no-op, since
    the version names the weights).
    """
    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).is_file():
        raise ModelNotFoundError(f"{model_dir}: no {CONFIG_FILE}; not a model folder")
    entry = describe(model_dir, name)
    marker = join_key(entry.key, PUBLISHED_FILE)
    if store.exists(marker):
        logger.info("model %s is in the registry already", entry.reference)
        return entry
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        if path.name in _SKIPPED or path.name == PUBLISHED_FILE:
            continue
        store.write_bytes(
            join_key(entry.key, path.relative_to(model_dir).as_posix()), path.read_bytes()
        )
    store.create_exclusive(marker, _marker_bytes(entry))
    logger.info("published model %s to %s", entry.reference, store.url)
    return entry


def list_versions(store: ObjectStore, name: str) -> list[ModelVersion]:
    """The published versions of ``name``, oldest first (the version string sorts by time)."""
    base = join_key(REGISTRY_PREFIX, check_name(name)) + "/"
    found = []
    for info in store.list(base):
        parts = info.key[len(base) :].split("/")
        if len(parts) == 2 and parts[1] == PUBLISHED_FILE:
            body = json.loads(store.read_bytes(info.key))
            found.append(
                ModelVersion(
                    name, parts[0], str(body.get("created", "")), str(body.get("parent", ""))
                )
            )
    return sorted(found, key=lambda entry: entry.version)


def list_models(store: ObjectStore) -> dict[str, list[ModelVersion]]:
    """Every model name in the registry with its versions."""
    names = sorted(
        {
            info.key.split("/")[1]
            for info in store.list(REGISTRY_PREFIX + "/")
            if info.key.endswith("/" + PUBLISHED_FILE) and info.key.count("/") == 3
        }
    )
    return {name: list_versions(store, name) for name in names}


def resolve_version(
    store: ObjectStore | None, name: str, version: str, default_version: str | None = None
) -> str:
    """The concrete version ``version`` stands for.

    ``default`` is the shipped model's version (``default_version``); ``latest`` is the
    registry's newest version, or the default when the registry has none. Any other version
    must be the default or be published.

    Raises
    ------
    ModelNotFoundError
        Naming the versions that exist.
    """
    if version == DEFAULT or version == default_version:
        if default_version is None:
            raise ModelNotFoundError(f"model {name!r} has no shipped default; name a version")
        return default_version
    published = list_versions(store, name) if store is not None else []
    if version == LATEST:
        if published:
            return published[-1].version
        return resolve_version(store, name, DEFAULT, default_version)
    if any(entry.version == version for entry in published):
        return version
    known = [entry.version for entry in published] + ([default_version] if default_version else [])
    where = store.url if store is not None else "no registry (OVERNIGHT_MODELS_URL unset)"
    raise ModelNotFoundError(
        f"model {name}@{version} not found in {where}; known versions: {known or 'none'}"
    )


def fetch_version(store: ObjectStore, name: str, version: str, cache_root: Path) -> Path:
    """The local folder of ``name@version``, downloaded into ``cache_root`` on first use.

    The copy is made in a temporary folder beside the cache entry and renamed into place, so a
    half-copied model is never used; a cached version is used as it is (versions never change).
    """
    local = Path(cache_root) / check_name(name) / check_version(version)
    if (local / PUBLISHED_FILE).is_file():
        return local
    base = version_prefix(name, version)
    prefix = base + "/"
    keys = [info.key for info in store.list(prefix)]
    if join_key(base, PUBLISHED_FILE) not in keys:
        raise ModelNotFoundError(f"{store.url}: no published model under {prefix}")
    local.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=local.parent))
    try:
        for key in keys:
            target = scratch / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download(key, target)
        try:
            scratch.rename(local)
        except OSError:  # another process cached it first
            if not (local / PUBLISHED_FILE).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("model %s@%s cached in %s", name, version, local)
    return local


def registry_reference(model_dir: Path) -> str | None:
    """``<name>@<version>`` of a folder copied from the registry (its ``published.json``)."""
    marker = Path(model_dir) / PUBLISHED_FILE
    if not marker.is_file():
        return None
    body = json.loads(marker.read_text())
    return f"{body['name']}@{body['version']}"


def mark_published(model_dir: Path, entry: ModelVersion) -> None:
    """Write the ``published.json`` of ``entry`` into a local model folder."""
    (Path(model_dir) / PUBLISHED_FILE).write_bytes(_marker_bytes(entry))


def _marker_bytes(entry: ModelVersion) -> bytes:
    body = {
        "name": entry.name,
        "version": entry.version,
        "created": entry.created,
        "parent": entry.parent,
    }
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")
