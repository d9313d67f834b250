"""The editor's operations replayed on a tiny stored result: the core behind the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overnight.results.artefacts import labels_tiff_bytes
from overnight.review.annotation import save_annotation
from overnight.storage import LocalStore
from overnight_qc.core.editing import (
    EditRequest,
    OperationError,
    apply_operations,
    base_state,
    state_json,
    to_annotation,
)

LABELS = np.array([[1, 1, 1, 0, 2], [1, 1, 1, 0, 2], [0, 0, 0, 0, 0]], dtype=np.uint16)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path)
    store.write_bytes("img/labels.tif", labels_tiff_bytes(LABELS))
    store.write_bytes("img/pnps.csv", b"z,y,x,cell_id,intensity,multiplicity\n1,0.2,0.4,1,9,2\n")
    store.write_bytes("img/cells.csv", b"cell_id,cell_type\n1,HeLa\n2,fibroblast\n")
    versions = {"overnight": "0.3", "locate_cells_ae.model": "cells-2", "count": "1"}
    store.write_bytes("img/result.json", json.dumps({"versions": versions}).encode())
    return store


def _ops(*ops: dict) -> EditRequest:
    return EditRequest.model_validate({"ops": list(ops)})


def test_the_model_result_is_the_first_base(store: LocalStore) -> None:
    state = base_state(store, "img", None)
    assert state.labels.tolist() == LABELS.tolist()
    assert state.spots.tolist() == [[0.2, 0.4, 2.0]]
    assert state.cell_types == {1: "HeLa", 2: "fibroblast"}
    assert state.model_versions == {"locate_cells_ae.model": "cells-2"}


def test_operations_replay_in_order_and_name_the_failing_one(store: LocalStore) -> None:
    state = base_state(store, "img", None)
    edited = apply_operations(
        state,
        _ops(
            {"op": "merge_cells", "keep_id": 1, "other_id": 2},
            {"op": "add_spot", "y": 2, "x": 3, "multiplicity": 3},
            {"op": "set_multiplicity", "y": 0, "x": 0, "multiplicity": 1},
        ).ops,
    )
    body = state_json(edited)
    assert body["cell_count"] == 1 and body["particle_count"] == 4
    assert to_annotation(edited, "ana", "").cell_types == {1: "HeLa"}
    with pytest.raises(OperationError, match="edit 2: cell 2 is not") as caught:
        apply_operations(
            state,
            _ops({"op": "delete_cell", "cell_id": 2}, {"op": "delete_cell", "cell_id": 2}).ops,
        )
    assert caught.value.index == 1


def test_a_split_line_finds_the_cell_it_crosses(store: LocalStore) -> None:
    state = base_state(store, "img", None)
    edited = apply_operations(state, _ops({"op": "split_cell", "line": [[-1, 1], [3, 1]]}).ops)
    assert sorted(np.unique(edited.labels).tolist()) == [0, 1, 2, 3]
    assert edited.cell_types[3] == "HeLa"  # the new part keeps the type of the cell it came from


def test_a_saved_version_is_the_next_base(store: LocalStore) -> None:
    state = base_state(store, "img", None)
    edited = apply_operations(state, _ops({"op": "delete_cell", "cell_id": 2}).ops)
    saved = save_annotation(store, "img", to_annotation(edited, "ana", "n"), expected_version=None)
    assert saved.model_versions == {"locate_cells_ae.model": "cells-2"}
    again = base_state(store, "img", 1)
    assert 2 not in again.labels and again.model_versions == saved.model_versions


def test_requests_with_too_many_points_are_refused() -> None:
    line = [[0, 0]] * 4000
    with pytest.raises(ValueError, match="at most 40000"):
        EditRequest.model_validate({"ops": [{"op": "split_cell", "line": line}] * 11})
