"""Label and spot edits on tiny literal arrays: what each operation must give."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from overnight.errors import AnnotationError
from overnight.review.edits import (
    FOUR_CONNECTED,
    add_spot,
    brush_mask,
    delete_cell,
    draw_cell,
    merge_cells,
    polygon_mask,
    prune_cell_types,
    remove_spot,
    set_cell_type,
    set_spot_multiplicity,
    split_cell,
)

LABELS = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 2, 2],
        [3, 3, 0, 0, 0, 2, 2],
    ],
    dtype=np.uint16,
)


def _ids(labels: np.ndarray) -> list[int]:
    return [int(i) for i in np.unique(labels) if i > 0]


def _components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, structure=FOUR_CONNECTED)[1])


def test_delete_cell_clears_only_that_cell() -> None:
    out = delete_cell(LABELS, 2)
    assert _ids(out) == [1, 3]
    assert np.array_equal(out[LABELS != 2], LABELS[LABELS != 2])
    assert out.dtype == LABELS.dtype
    assert 2 in LABELS  # the input is untouched


def test_merge_keeps_one_id() -> None:
    out = merge_cells(LABELS, keep_id=1, other_id=2)
    assert _ids(out) == [1, 3]
    assert np.count_nonzero(out == 1) == np.count_nonzero(LABELS == 1) + 4


def test_split_yields_two_connected_parts_with_unique_ids() -> None:
    out, new_id = split_cell(LABELS, 1, [(0.0, 3.0), (4.0, 3.0)])
    assert new_id == 4
    assert _ids(out) == [1, 2, 3, 4]
    for cell_id in (1, new_id):
        assert _components(out == cell_id) == 1
    # the cell's area is kept: the cut pixels joined one of the parts
    assert np.count_nonzero((out == 1) | (out == 4)) == np.count_nonzero(LABELS == 1)
    assert np.array_equal(out[LABELS != 1], LABELS[LABELS != 1])


def test_split_along_a_diagonal_polyline() -> None:
    out, new_id = split_cell(LABELS, 1, [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)])
    assert _components(out == 1) == 1 and _components(out == new_id) == 1
    assert len(_ids(out)) == len(_ids(LABELS)) + 1


def test_split_with_a_line_that_does_not_cross_is_refused() -> None:
    with pytest.raises(AnnotationError, match="does not cut cell 1 in two"):
        split_cell(LABELS, 1, [(0.0, 3.0), (2.0, 3.0)])


def test_draw_cell_paints_only_background_with_a_new_id() -> None:
    mask = polygon_mask(LABELS.shape, [(4.0, 1.0), (4.0, 4.0), (5.0, 4.0), (5.0, 1.0)])
    out, new_id = draw_cell(LABELS, mask)
    assert new_id == 4
    assert np.array_equal(out[LABELS > 0], LABELS[LABELS > 0])  # cell 3 keeps (5, 1)
    assert np.count_nonzero(out == 4) == 7
    assert _components(out == 4) == 1


def test_draw_cell_with_the_brush() -> None:
    mask = brush_mask(LABELS.shape, [(4.0, 3.0)], radius_px=1.0)
    out, new_id = draw_cell(LABELS, mask)
    assert sorted(map(tuple, np.argwhere(out == new_id).tolist())) == [
        (4, 2),
        (4, 3),
        (4, 4),
        (5, 3),
    ]


def test_draw_cell_over_cells_only_is_refused() -> None:
    mask = np.zeros(LABELS.shape, bool)
    mask[2, 2] = True
    with pytest.raises(AnnotationError, match="no free pixel"):
        draw_cell(LABELS, mask)


@pytest.mark.parametrize(
    "edit",
    [
        lambda: delete_cell(LABELS, 9),
        lambda: merge_cells(LABELS, 1, 9),
        lambda: merge_cells(LABELS, 1, 1),
        lambda: split_cell(LABELS, 0, [(0.0, 0.0), (5.0, 5.0)]),
        lambda: set_cell_type(LABELS, {}, 9, "HeLa"),
    ],
)
def test_unknown_ids_are_refused(edit) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnnotationError):
        edit()


def test_cell_types_follow_the_labels() -> None:
    types = set_cell_type(LABELS, {1: "HeLa"}, 2, "fibroblast")
    assert types == {1: "HeLa", 2: "fibroblast"}
    assert prune_cell_types(delete_cell(LABELS, 2), types) == {1: "HeLa"}


def test_spots_add_remove_and_multiplicity() -> None:
    spots = np.zeros((0, 3))
    spots = add_spot(spots, 2.0, 3.0, LABELS.shape)
    spots = add_spot(spots, 5.0, 6.0, LABELS.shape, multiplicity=2)
    assert spots.tolist() == [[2.0, 3.0, 1.0], [5.0, 6.0, 2.0]]
    spots = set_spot_multiplicity(spots, 2.4, 3.4, 3)
    assert spots[:, 2].tolist() == [3.0, 2.0]
    spots = remove_spot(spots, 4.0, 6.0, radius_px=2.0)
    assert spots.tolist() == [[2.0, 3.0, 3.0]]
    with pytest.raises(AnnotationError, match="no particle within"):
        remove_spot(spots, 5.0, 6.0, radius_px=2.0)
    with pytest.raises(AnnotationError, match="outside"):
        add_spot(spots, 6.0, 0.0, LABELS.shape)
