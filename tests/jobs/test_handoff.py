import numpy as np

from overnight.jobs.handoff import Handoff, handoff_names, pack_handoff, unpack_handoff
from overnight.pipeline.definition import load_pipeline
from overnight.steps.classify import CellTypes


def test_counting_stage_needs_the_segmentation_outputs_only() -> None:
    pipeline = load_pipeline("cytometry-classical")
    assert handoff_names(pipeline, "segmentation", "counting") == (
        "cell_image",
        "cell_labels",
        "cell_types",
    )


def test_handoff_round_trips_arrays_and_cell_types() -> None:
    labels = np.array([[0, 1, 1], [0, 2, 2]], dtype=np.int32)
    types = CellTypes(
        cell_ids=np.array([1, 2]), names=("lymphocyte", "monocyte"), confidence=np.array([0.9, 0.6])
    )
    handoff = Handoff(
        values={"cell_labels": labels, "cell_types": types},
        read_s=0.25,
        timings_s={"locate_cells": 0.1},
        metadata={"well": "A1"},
        warnings=("odd name",),
    )
    back = unpack_handoff(pack_handoff(handoff))
    np.testing.assert_array_equal(back.values["cell_labels"], labels)
    assert back.values["cell_labels"].dtype == np.int32
    assert back.values["cell_types"].as_dict() == {1: "lymphocyte", 2: "monocyte"}
    np.testing.assert_allclose(back.values["cell_types"].confidence, [0.9, 0.6])
    assert (back.read_s, dict(back.timings_s), dict(back.metadata), back.warnings) == (
        0.25,
        {"locate_cells": 0.1},
        {"well": "A1"},
        ("odd name",),
    )
