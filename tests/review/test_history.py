"""What changed between annotation versions: cells and particles on tiny literal arrays."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import AnnotationError
from overnight.review import edits
from overnight.review.annotation import Annotation, load_annotation, load_record, save_annotation
from overnight.review.history import (
    AnnotationChanges,
    Snapshot,
    compare_versions,
    snapshot_of,
    version_changes,
)
from overnight.storage import LocalStore

LABELS = np.array(
    [
        [1, 1, 0, 2, 2, 0],
        [1, 1, 0, 2, 2, 0],
        [0, 0, 0, 0, 0, 0],
        [3, 3, 3, 3, 0, 4],
        [3, 3, 3, 3, 0, 4],
    ],
    dtype=np.uint32,
)
SPOTS = np.array([[0.0, 0.0, 1.0], [0.5, 3.5, 2.0], [2.0, 2.0, 1.0]])
NO_SPOTS = np.zeros((0, 3))


def _snap(labels: np.ndarray, spots: np.ndarray = SPOTS, **types: str) -> Snapshot:
    return Snapshot(labels, spots, {int(k.removeprefix("c")): v for k, v in types.items()})


def test_identical_snapshots_have_no_change() -> None:
    changes = compare_versions(_snap(LABELS, c1="HeLa"), _snap(LABELS.copy(), c1="HeLa"))
    assert changes == AnnotationChanges() and changes.empty
    assert changes.summary() == "no change"


def test_new_ids_for_the_same_pixels_are_no_change() -> None:
    relabelled = np.where(LABELS == 4, 9, LABELS).astype(np.uint32)
    assert compare_versions(_snap(LABELS), _snap(relabelled)).empty


def test_a_deleted_cell_is_removed() -> None:
    changes = compare_versions(_snap(LABELS), _snap(edits.delete_cell(LABELS, 2)))
    assert changes.cells_removed == (2,)
    assert changes.cells_added == changes.cells_reshaped == ()
    assert changes.summary() == "1 cell removed"


def test_a_merge_names_the_kept_cell_and_the_joined_ones() -> None:
    changes = compare_versions(_snap(LABELS), _snap(edits.merge_cells(LABELS, 1, 2)))
    assert changes.cells_merged == ((1, (1, 2)),)
    assert changes.changed_cells == (1,)
    assert changes.cells_removed == changes.cells_added == changes.cells_reshaped == ()
    assert changes.summary() == "2 cells merged into 1"


def test_a_split_names_the_cell_and_its_parts() -> None:
    after, new_id = edits.split_cell(LABELS, 3, [(2.0, 2.0), (4.0, 2.0)])
    changes = compare_versions(_snap(LABELS), _snap(after))
    assert changes.cells_split == ((3, tuple(sorted((3, new_id)))),)
    assert changes.cells_added == changes.cells_removed == changes.cells_merged == ()
    assert changes.summary() == "1 cell split into 2"
    assert changes.changed_cells == tuple(sorted((3, new_id)))


def test_a_drawn_cell_is_added_and_a_grown_one_reshaped() -> None:
    after = LABELS.copy()
    after[0:2, 5] = 7  # a new cell on glass
    after[2, 0:2] = 1  # cell 1 grows by a row
    changes = compare_versions(_snap(LABELS), _snap(after))
    assert changes.cells_added == (7,) and changes.cells_reshaped == (1,)
    assert changes.changed_cells == (1, 7)
    assert changes.summary() == "1 cell added, 1 cell reshaped"


def test_a_cell_moved_mostly_onto_glass_is_removed_and_added() -> None:
    after = LABELS.copy()
    after[after == 4] = 0
    after[0:2, 5] = 4  # same id, other place
    changes = compare_versions(_snap(LABELS), _snap(after))
    assert (changes.cells_removed, changes.cells_added) == ((4,), (4,))


def test_type_changes_count_only_matched_cells() -> None:
    after = edits.delete_cell(LABELS, 2)
    before = _snap(LABELS, c1="HeLa", c2="HeLa", c3="HeLa")
    changes = compare_versions(before, _snap(after, c1="macrophage", c3="HeLa", c4="HeLa"))
    assert changes.cell_types_changed == (1, 4)  # cell 2's type went with the cell
    assert changes.summary() == "1 cell removed, 2 cell types changed"
    assert changes.changed_cells == (1, 4)  # the removed cell 2 is not in the later snapshot


def test_particles_added_removed_and_recounted_by_position() -> None:
    after = edits.add_spot(SPOTS, 4.0, 5.0, LABELS.shape, 3)
    after = edits.remove_spot(after, 0.0, 0.0)
    after = edits.set_spot_multiplicity(after, 0.5, 3.5, 5, 1.0)
    changes = compare_versions(_snap(LABELS), _snap(LABELS, after))
    assert (changes.spots_added, changes.spots_removed, changes.multiplicity_changed) == (1, 1, 1)
    assert changes.particle_change == 3 - 1 + (5 - 2)
    assert changes.summary() == (
        "1 particle spot added, 1 particle spot removed, 1 spot multiplicity changed"
    )


def test_positions_match_at_the_stored_precision() -> None:
    stored = np.round(SPOTS + 0.001, 2)  # spots.csv keeps 0.01 px
    assert compare_versions(_snap(LABELS, SPOTS + 0.001), _snap(LABELS, stored)).empty


def test_shapes_must_agree() -> None:
    with pytest.raises(AnnotationError, match=r"same shape but are \(5, 6\) and \(5, 5\)"):
        compare_versions(_snap(LABELS), _snap(LABELS[:, :5]))


def test_changes_are_json_round_trips() -> None:
    changes = compare_versions(_snap(LABELS), _snap(edits.merge_cells(LABELS, 3, 4)))
    assert AnnotationChanges.model_validate(changes.model_dump(mode="json")) == changes


def _annotation(labels: np.ndarray, spots: np.ndarray, **extra: object) -> Annotation:
    base = Annotation(labels, spots, {}, "ana", "", 0, None)
    return dataclasses.replace(base, **extra)  # type: ignore[arg-type]


def test_each_stored_version_is_compared_with_its_parent(tmp_path: Path) -> None:
    store, prefix = LocalStore(tmp_path), "results/ds/img"
    v1 = edits.delete_cell(LABELS, 2)
    save_annotation(store, prefix, _annotation(v1, SPOTS), expected_version=None)
    v2_spots = edits.add_spot(SPOTS, 4.0, 5.0, LABELS.shape)
    save_annotation(store, prefix, _annotation(v1, v2_spots), expected_version=1)
    first = load_annotation(store, prefix, 1)
    assert first is not None
    restored = dataclasses.replace(first, restored_from=1, author="bo")
    save_annotation(store, prefix, restored, expected_version=2)
    changes = version_changes(store, prefix, _snap(LABELS))
    assert changes[1].cells_removed == (2,) and changes[1].spots_added == 0
    assert changes[2].spots_added == 1 and changes[2].cells_removed == ()
    assert changes[3].spots_removed == 1 and changes[3].cells_removed == ()  # v2's spot undone
    record = load_record(store, prefix, 3)
    assert record is not None and (record.restored_from, record.parent_version) == (1, 2)
    third = load_annotation(store, prefix, 3)
    assert third is not None and third.restored_from == 1
    assert compare_versions(snapshot_of(first), snapshot_of(third)).empty
    assert load_record(store, prefix, 1).restored_from is None  # type: ignore[union-attr]


def test_an_unreadable_version_and_its_child_are_left_out(tmp_path: Path) -> None:
    store, prefix = LocalStore(tmp_path), "results/ds/img"
    for parent, labels in ((None, LABELS), (1, edits.delete_cell(LABELS, 1))):
        save_annotation(store, prefix, _annotation(labels, SPOTS), expected_version=parent)
    save_annotation(store, prefix, _annotation(LABELS, SPOTS), expected_version=2)
    (tmp_path / prefix / "annotation" / "v0002" / "labels.tif").write_bytes(b"damaged")
    changes = version_changes(store, prefix, _snap(LABELS))
    assert sorted(changes) == [1] and changes[1].empty


def test_no_versions_no_changes(tmp_path: Path) -> None:
    assert version_changes(LocalStore(tmp_path), "results/ds/img", _snap(LABELS, NO_SPOTS)) == {}
