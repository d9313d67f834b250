"""What a storage listing says about datasets: their image folders and dataset-level files.

A dataset is a key prefix (``results/<dataset_id>`` in object storage, ``""`` for an embedded
run's output folder) holding ``<image_id>/`` folders and a few dataset files
(``summary.csv``, ``failures.json``, ``dataset.json``). One recursive listing of the prefix is
split here into those parts; nothing is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from overnight.storage.base import ObjectInfo

MANIFEST = "manifest.json"
RESULT = "result.json"
VERDICT = "verdict.json"
DATASET_FILES = ("summary.csv", "failures.json", "dataset.json")


@dataclass(frozen=True)
class ImageFiles:
    """The files of one image folder, by name (``manifest.json``, ``result.json``, ...)."""

    image_id: str
    prefix: str
    files: dict[str, ObjectInfo] = field(default_factory=dict)

    @property
    def has_manifest(self) -> bool:
        """Whether the folder holds a ``manifest.json`` (not yet checked)."""
        return MANIFEST in self.files

    def signature(self) -> tuple[str, ...]:
        """ETags (or size and mtime) of manifest, result and verdict: changes when they do."""
        return tuple(_tag(self.files.get(name)) for name in (MANIFEST, RESULT, VERDICT))


@dataclass(frozen=True)
class DatasetListing:
    """One dataset's image folders and dataset files, as one listing saw them."""

    dataset_id: str
    prefix: str
    images: dict[str, ImageFiles]
    dataset_files: dict[str, ObjectInfo]

    @cached_property
    def signature(self) -> str:
        """A digest of every file's tag: equal listings give equal signatures."""
        digest = hashlib.sha1()
        for name in sorted(self.dataset_files):
            digest.update(f"{name}={_tag(self.dataset_files[name])};".encode())
        for image_id in sorted(self.images):
            digest.update(f"{image_id}:{'|'.join(self.images[image_id].signature())};".encode())
        return digest.hexdigest()


def _tag(info: ObjectInfo | None) -> str:
    if info is None:
        return "-"
    return info.etag or f"{info.size}:{info.mtime}"


def child_key(prefix: str, name: str) -> str:
    """``prefix/name``, or ``name`` when ``prefix`` is the store root."""
    return f"{prefix}/{name}" if prefix else name


def split_dataset(dataset_id: str, prefix: str, objects: Iterable[ObjectInfo]) -> DatasetListing:
    """Group the objects under ``prefix`` into image folders and dataset files.

    Hidden names (``.commit.json``, ``.attempts/``) and deeper keys are skipped.
    """
    base = f"{prefix}/" if prefix else ""
    images: dict[str, dict[str, ObjectInfo]] = {}
    dataset_files: dict[str, ObjectInfo] = {}
    for info in objects:
        if not info.key.startswith(base):
            continue
        parts = info.key[len(base) :].split("/")
        if any(part.startswith(".") for part in parts):
            continue
        if len(parts) == 1 and parts[0] in DATASET_FILES:
            dataset_files[parts[0]] = info
        elif len(parts) == 2:
            images.setdefault(parts[0], {})[parts[1]] = info
    return DatasetListing(
        dataset_id=dataset_id,
        prefix=prefix,
        images={
            image_id: ImageFiles(image_id, child_key(prefix, image_id), files)
            for image_id, files in sorted(images.items())
        },
        dataset_files=dataset_files,
    )


def split_root(root: str, objects: Iterable[ObjectInfo]) -> dict[str, list[ObjectInfo]]:
    """Objects under ``root/<dataset_id>/...`` grouped by dataset id (in key order)."""
    base = f"{root}/" if root else ""
    grouped: dict[str, list[ObjectInfo]] = {}
    for info in objects:
        rest = info.key[len(base) :] if info.key.startswith(base) else None
        if rest is None or "/" not in rest or rest.startswith("."):
            continue
        grouped.setdefault(rest.split("/", 1)[0], []).append(info)
    return grouped
