"""result.json as one typed, versioned record; the results layout in one place."""

import json
import math

import pytest
from pydantic import ValidationError

from overnight.results.layout import DatasetResults, dataset_prefix
from overnight.results.record import RESULT_SCHEMA_VERSION, ImageResult
from overnight.storage import open_store

V1 = {
    "schema_version": 1,
    "image_id": "img1",
    "source": "/nas/plate/img1.tif",
    "shape_zcyx": [3, 2, 8, 8],
    "pixel_size_um": None,
    "z_step_um": 0.5,
    "metadata": {"drug": "rux"},
    "pipeline": {"name": "cytometry", "version": 1, "steps": []},
    "versions": {"overnight": "0.1.0"},
    "timings_s": {"read": 0.01},
    "warnings": [],
    "summary": {"n_cells": 2, "pnp_per_cell_vmr": float("nan")},
    "finished_at": "2026-12-07T03:00:00+00:00",
}


def test_a_version_1_record_reads_with_empty_qc_and_writes_as_version_2() -> None:
    record = ImageResult.from_bytes(json.dumps(V1).encode())
    assert record.qc == {} and record.shape_zcyx == (3, 2, 8, 8)
    written = json.loads(record.to_bytes())
    assert written["schema_version"] == RESULT_SCHEMA_VERSION == 2
    assert list(written) == [*V1, "qc", "acquisition"], "fields keep their order"
    assert math.isnan(written["summary"]["pnp_per_cell_vmr"])
    columns = ["image_id", "drug", "pixel_size_um", "z_step_um", "n_cells", "pnp_per_cell_vmr"]
    assert list(record.summary_row()) == columns


def test_qc_holds_any_flags_and_unknown_fields_are_refused() -> None:
    flagged = ImageResult.model_validate({**V1, "qc": {"out_of_focus": True, "snr": 3.5}})
    assert json.loads(flagged.to_bytes())["qc"] == {"out_of_focus": True, "snr": 3.5}
    with pytest.raises(ValidationError):
        ImageResult.model_validate({**V1, "surprise": 1})
    with pytest.raises(ValidationError):
        ImageResult.model_validate({**V1, "schema_version": 3})


def test_the_layout_of_an_output_folder_and_of_a_service_dataset(tmp_path) -> None:
    store = open_store(str(tmp_path))
    embedded, service = DatasetResults(store), DatasetResults.of_dataset(store, "ds-1")
    assert dataset_prefix("ds-1") == "results/ds-1" == service.prefix
    assert (embedded.image_prefix("a"), service.image_prefix("a")) == ("a", "results/ds-1/a")
    assert (embedded.summary_key, service.failures_key) == (
        "summary.csv",
        "results/ds-1/failures.json",
    )
    assert list(service.published_images()) == []
