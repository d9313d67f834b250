"""Shared by the retraining tests: a model registry folder and the truth saved as a correction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from overnight.evaluation.cytometry import particle_positions, read_field_tables
from overnight.models import loading
from overnight.results.layout import DatasetResults
from overnight.results.record import ImageResult
from overnight.review.annotation import Annotation, model_versions_of, save_annotation
from overnight.storage.base import ObjectStore


@pytest.fixture()
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry folder named by ``OVERNIGHT_MODELS_URL``, with a fresh model cache."""
    folder = tmp_path / "registry"
    folder.mkdir()
    monkeypatch.setenv("OVERNIGHT_MODELS_URL", folder.as_uri())
    monkeypatch.setenv("OVERNIGHT_MODEL_CACHE", str(tmp_path / "model-cache"))
    loading.model_settings.cache_clear()
    loading.registry_store.cache_clear()
    yield folder
    loading.model_settings.cache_clear()
    loading.registry_store.cache_clear()


def save_truth_as_correction(
    store: ObjectStore, results: DatasetResults, image_id: str, truth_dir: Path, author: str
) -> None:
    """Save the generator's truth of ``image_id`` as its first annotation, by ``author``."""
    truth = read_field_tables(truth_dir)
    points = particle_positions(truth.pnps)
    result = ImageResult.read(store, results.image_prefix(image_id))
    present = set(np.unique(truth.labels[truth.labels > 0]).tolist())
    types = dict(zip(truth.cells["cell_id"], truth.cells["cell_type"], strict=True))
    annotation = Annotation(
        labels=truth.labels.astype(np.uint32),
        spots=np.column_stack([points[:, 1], points[:, 2], np.ones(len(points))]),
        cell_types={int(k): str(v) for k, v in types.items() if int(k) in present},
        author=author,
        created_at="",
        version=0,
        parent_version=None,
        model_versions=model_versions_of(result.versions),
    )
    save_annotation(store, results.image_prefix(image_id), annotation, expected_version=None)
