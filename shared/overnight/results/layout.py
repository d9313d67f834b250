"""Where results lie: the one definition of the results layout, in keys of a store.

A dataset's results are a key prefix: ``results/<dataset_id>`` in the services' store, ``""``
(the folder itself) for an embedded run's output folder. Inside it::

    <dataset prefix>/
        <image_id>/labels.tif, cells.csv, pnps.csv, qc.png, result.json, manifest.json
        summary.csv        one row per complete image
        failures.json      the images that failed, with their reasons
        dataset.json       the dataset's record (services only)

>>> dataset_prefix("ds-42")
'results/ds-42'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from overnight.storage import ObjectStore, is_complete, validate_id, write_dataset_file
from overnight.storage.publish import ATTEMPTS_DIR

#: Key prefix of the services' results: one folder per dataset under it.
RESULTS_ROOT = "results"
#: Per-image files.
RESULT_FILE = "result.json"
#: Per-dataset files.
SUMMARY_FILE = "summary.csv"
FAILURES_FILE = "failures.json"
DATASET_FILE = "dataset.json"


def dataset_prefix(dataset_id: str) -> str:
    """``results/<dataset_id>``: the prefix of a dataset's results in the services' store."""
    return f"{RESULTS_ROOT}/{validate_id(dataset_id)}"


@dataclass(frozen=True)
class DatasetResults:
    """One dataset's results: a store and the dataset's prefix in it (``""`` = the root)."""

    store: ObjectStore
    prefix: str = ""

    @classmethod
    def of_dataset(cls, store: ObjectStore, dataset_id: str) -> DatasetResults:
        """The results of the services' dataset ``dataset_id`` (``results/<id>``)."""
        return cls(store, dataset_prefix(dataset_id))

    def key(self, name: str) -> str:
        """The key of ``name`` (a relative key) inside the dataset's prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def image_prefix(self, image_id: str) -> str:
        """``<prefix>/<image_id>``: where one image's result is published."""
        return self.key(image_id)

    @property
    def summary_key(self) -> str:
        """Key of ``summary.csv``."""
        return self.key(SUMMARY_FILE)

    @property
    def failures_key(self) -> str:
        """Key of ``failures.json``."""
        return self.key(FAILURES_FILE)

    @property
    def dataset_key(self) -> str:
        """Key of ``dataset.json``."""
        return self.key(DATASET_FILE)

    def is_complete(self, image_id: str, *, check_content: bool = True) -> bool:
        """Whether the image's result is published with a valid manifest."""
        return is_complete(self.store, self.image_prefix(image_id), check_content=check_content)

    def published_images(self) -> Iterator[str]:
        """Prefixes ``<prefix>/<image_id>`` that hold a manifest (complete results only)."""
        base = f"{self.prefix}/" if self.prefix else ""
        for info in self.store.list(base):
            parts = info.key[len(base) :].split("/")
            if len(parts) == 2 and parts[1] == "manifest.json" and not parts[0].startswith("."):
                yield f"{base}{parts[0]}"

    def leftover_staging(self) -> Iterator[str]:
        """Keys under ``<image_id>/.attempts/``: staging of publications that never finished.

        A worker killed between staging and commit leaves its copy there; once the dataset
        is finished no publication is running, so :func:`finish_dataset` deletes them.
        """
        base = f"{self.prefix}/" if self.prefix else ""
        for info in self.store.list(base):
            parts = info.key[len(base) :].split("/")
            if len(parts) > 2 and parts[1] == ATTEMPTS_DIR:
                yield info.key

    def write_file(self, name: str, data: bytes) -> None:
        """Write a dataset-level file (``summary.csv``, ``failures.json``) atomically."""
        write_dataset_file(self.store, self.key(name), data)
