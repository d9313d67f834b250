"""Annotation storage: versions, conflicts, history, and the result left untouched."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import AnnotationConflictError, AnnotationError
from overnight.results.layout import DatasetResults
from overnight.review.annotation import (
    Annotation,
    annotated_images,
    annotation_versions,
    corrected_cells_table,
    load_annotation,
    load_record,
    model_versions_of,
    save_annotation,
)
from overnight.storage import LocalStore, is_complete, publish_result

LABELS = np.array(
    [
        [0, 1, 1, 0, 0],
        [0, 1, 1, 0, 2],
        [0, 0, 0, 0, 2],
        [3, 3, 0, 0, 2],
    ],
    dtype=np.uint32,
)
SPOTS = np.array([[0.0, 1.0, 2.0], [2.0, 4.0, 1.0], [2.0, 2.0, 1.0]])


def _annotation(**changes: object) -> Annotation:
    base = Annotation(
        labels=LABELS,
        spots=SPOTS,
        cell_types={1: "HeLa", 2: "fibroblast"},
        author="ana",
        created_at="",
        version=0,
        parent_version=None,
        model_versions={"segment_cells.model": "1.0.0"},
        note="first pass",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def published(tmp_path: Path) -> tuple[DatasetResults, str]:
    """A dataset with one published image result ``img1``."""
    results = DatasetResults(LocalStore(tmp_path), "results/ds1")
    prefix = results.image_prefix("img1")
    publish_result(results.store, prefix, {"labels.tif": b"model", "result.json": b"{}"}, {})
    return results, prefix


def test_save_and_load_round_trip(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    saved = save_annotation(results.store, prefix, _annotation(), expected_version=None)
    assert (saved.version, saved.parent_version) == (1, None)
    assert saved.created_at.endswith("+00:00")
    loaded = load_annotation(results.store, prefix)
    assert loaded is not None
    np.testing.assert_array_equal(loaded.labels, LABELS)
    assert loaded.labels.dtype == np.uint32
    np.testing.assert_allclose(loaded.spots, SPOTS)
    assert loaded.cell_types == {1: "HeLa", 2: "fibroblast"}
    assert loaded.model_versions == {"segment_cells.model": "1.0.0"}
    assert (loaded.author, loaded.version, loaded.note) == ("ana", 1, "first pass")
    assert loaded.particle_count == 4


def test_versions_and_history(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    assert load_annotation(results.store, prefix) is None
    assert annotation_versions(results.store, prefix) == []
    save_annotation(results.store, prefix, _annotation(), expected_version=None)
    second = _annotation(labels=np.where(LABELS == 3, 0, LABELS), cell_types={}, author="bo")
    saved = save_annotation(results.store, prefix, second, expected_version=1)
    assert (saved.version, saved.parent_version) == (2, 1)
    assert annotation_versions(results.store, prefix) == [1, 2]
    first = load_annotation(results.store, prefix, version=1)
    latest = load_annotation(results.store, prefix)
    assert first is not None and latest is not None
    assert 3 in first.labels and 3 not in latest.labels
    record = load_record(results.store, prefix, 2)
    assert record is not None and (record.author, record.cell_count) == ("bo", 2)
    latest_json = results.store.read_bytes(f"{prefix}/annotation/latest.json")
    assert b'"version": 2' in latest_json


def test_stale_version_is_a_conflict(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    save_annotation(results.store, prefix, _annotation(), expected_version=None)
    with pytest.raises(AnnotationConflictError, match="reload"):
        save_annotation(results.store, prefix, _annotation(), expected_version=None)
    save_annotation(results.store, prefix, _annotation(author="bo"), expected_version=1)
    with pytest.raises(AnnotationConflictError, match="version 2 is the latest"):
        save_annotation(results.store, prefix, _annotation(author="cy"), expected_version=1)
    assert annotation_versions(results.store, prefix) == [1, 2]


def test_claimed_version_is_a_conflict(published: tuple[DatasetResults, str]) -> None:
    """A second reviewer racing for the same number loses (the claim is exclusive)."""
    results, prefix = published
    results.store.write_bytes(f"{prefix}/annotation/v0001/.claim", b"other")
    with pytest.raises(AnnotationConflictError, match="right now"):
        save_annotation(results.store, prefix, _annotation(), expected_version=None)


def test_result_untouched_and_still_complete(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    before = {i.key: results.store.read_bytes(i.key) for i in results.store.list(prefix)}
    save_annotation(results.store, prefix, _annotation(), expected_version=None)
    save_annotation(results.store, prefix, _annotation(), expected_version=1)
    for key, data in before.items():
        assert results.store.read_bytes(key) == data
    assert results.is_complete("img1")
    assert is_complete(results.store, prefix)
    assert list(results.published_images()) == [prefix]
    assert list(results.leftover_staging()) == []
    # a deliberate re-analysis replaces the result and keeps the corrections
    publish_result(results.store, prefix, {"labels.tif": b"new"}, {}, replace=True)
    assert annotation_versions(results.store, prefix) == [1, 2]


def test_annotated_images(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    publish_result(results.store, results.image_prefix("img2"), {"result.json": b"{}"}, {})
    assert annotated_images(results) == []
    save_annotation(results.store, prefix, _annotation(), expected_version=None)
    assert annotated_images(results) == ["img1"]


def test_invalid_annotations_are_refused(published: tuple[DatasetResults, str]) -> None:
    results, prefix = published
    with pytest.raises(AnnotationError, match="cell 9"):
        save_annotation(
            results.store, prefix, _annotation(cell_types={9: "x"}), expected_version=None
        )
    with pytest.raises(AnnotationError, match="outside"):
        spots = np.array([[10.0, 1.0, 1.0]])
        save_annotation(results.store, prefix, _annotation(spots=spots), expected_version=None)
    with pytest.raises(AnnotationError, match="whole numbers"):
        spots = np.array([[1.0, 1.0, 0.5]])
        save_annotation(results.store, prefix, _annotation(spots=spots), expected_version=None)
    assert annotation_versions(results.store, prefix) == []


def test_corrected_cells_table_counts_particles_per_cell() -> None:
    table = corrected_cells_table(LABELS, SPOTS, {1: "HeLa"})
    assert table["cell_id"].tolist() == [1, 2, 3]
    assert table["area_px"].tolist() == [4, 3, 2]
    assert table["pnp_count"].tolist() == [2, 1, 0]
    assert table["cell_type"].tolist() == ["HeLa", "", ""]
    assert table.loc[0, "y"] == 0.5 and table.loc[0, "x"] == 1.5


def test_model_versions_of_picks_models() -> None:
    versions = {"overnight": "0.3", "segment_cells": "2", "segment_cells.model": "cells-1.2"}
    assert model_versions_of(versions) == {"segment_cells.model": "cells-1.2"}


def test_stale_claim_of_a_crashed_save_is_taken_over(
    published: tuple[DatasetResults, str], tmp_path: Path
) -> None:
    results, prefix = published
    claim = f"{prefix}/annotation/v0001/.claim"
    results.store.write_bytes(claim, b"crashed")
    os.utime(tmp_path / claim, (1.0, 1.0))
    saved = save_annotation(results.store, prefix, _annotation(), expected_version=None)
    assert saved.version == 1
