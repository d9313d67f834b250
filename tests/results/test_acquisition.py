"""What the image file says about its acquisition reaches result.json and the metadata columns."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.imaging.reader import read_stack
from overnight.results.record import ImageResult

VENDOR = Path(__file__).parents[1] / "data" / "vendor"


def _record(**changes: object) -> ImageResult:
    body = {
        "image_id": "a",
        "source": "a.tif",
        "shape_zcyx": [1, 2, 4, 4],
        "pixel_size_um": 0.5,
        "z_step_um": None,
        "metadata": {"drug": "rux"},
        "pipeline": {},
        "versions": {},
        "timings_s": {},
        "summary": {"n_cells": 1},
        "finished_at": "2026-12-07T00:00:00+00:00",
    }
    return ImageResult.model_validate(body | changes)


def test_an_ome_tiff_states_its_acquisition_time_and_channel_names(tmp_path) -> None:
    path = tmp_path / "field.ome.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 8, 8), "uint16"),
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.25,
            "Channel": {"Name": ["DAPI", "GFP"]},
            "AcquisitionDate": "2026-03-04T05:06:07",
        },
    )
    stack = read_stack(path)
    assert stack.pixel_size_um == 0.25
    assert stack.acquisition_fields() == {
        "acquired_at": "2026-03-04T05:06:07",
        "channel_names": "DAPI;GFP",
    }


@pytest.mark.skipif(importlib.util.find_spec("nd2") is None, reason="needs overnight[formats]")
def test_an_nd2_timepoint_gives_its_calibration_and_acquisition_columns() -> None:
    stack = read_stack(VENDOR / "cluster.nd2", timepoint=1)
    record = _record(
        pixel_size_um=stack.pixel_size_um,
        z_step_um=stack.z_step_um,
        acquisition=stack.acquisition_fields(),
    )
    row = ImageResult.from_bytes(record.to_bytes()).summary_row()
    assert row["pixel_size_um"] == pytest.approx(0.1678, abs=1e-4)
    assert row["z_step_um"] == pytest.approx(0.5)
    assert row["channel_names"] == "5-FAM/pH 9.0;FM 4-64/2% CHAPS"
    assert row["acquired_at"].startswith("2014-06-18")
    assert (row["file_format"], row["timepoint"]) == ("nd2", "1")
    assert list(row)[:3] == ["image_id", "drug", "pixel_size_um"], "metadata columns first"


def test_folder_metadata_wins_over_a_file_field_of_the_same_name() -> None:
    record = _record(metadata={"acquired_at": "from the folder"}, acquisition={"acquired_at": "x"})
    assert record.summary_row()["acquired_at"] == "from the folder"
    assert json.loads(record.to_bytes())["acquisition"] == {"acquired_at": "x"}
