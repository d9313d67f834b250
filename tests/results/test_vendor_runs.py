"""A real T x C x Z microscope file through the embedded run: one result per timepoint."""

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.results import loader

VENDOR = Path(__file__).parents[1] / "data" / "vendor"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("aicspylibczi") is None, reason="needs overnight[formats]"
)


def test_a_t_c_z_czi_gives_one_result_per_timepoint_with_its_acquisition(tmp_path) -> None:
    data = tmp_path / "data" / "drug-rux"
    data.mkdir(parents=True)
    shutil.copy(VENDOR / "CD_s_1_t_3_c_2_z_5.czi", data / "CD.czi")
    out = tmp_path / "out"
    options = BatchOptions(
        pipeline="cytometry-classical", out_url=str(out), dataset_dir=tmp_path / "data"
    )
    outcomes = run_batch([data / "CD.czi"], options)
    ids = [f"drug-rux~2FCD~t00{t}" for t in range(3)]
    assert [(o.image_id, o.status) for o in outcomes] == [(i, "done") for i in ids]
    records = [json.loads((out / i / "result.json").read_text()) for i in ids]
    for t, record in enumerate(records):
        assert record["shape_zcyx"] == [5, 2, 170, 240]
        assert record["pixel_size_um"] == pytest.approx(0.0906, abs=1e-4)
        assert record["z_step_um"] == pytest.approx(0.32, abs=1e-6)
        assert record["acquisition"] == {
            "acquired_at": record["acquisition"]["acquired_at"],
            "elapsed_s": record["acquisition"]["elapsed_s"],
            "file_format": "czi",
            "channel_names": "LED555;LED470",
            "timepoint": str(t),
        }
        # one minute apart: each timepoint's first subblock AcquisitionTime
        assert record["acquisition"]["acquired_at"].startswith(f"2016-02-12T09:4{7 + t}:08")
        assert float(record["acquisition"]["elapsed_s"]) == pytest.approx(60.0 * t, abs=0.1)
        assert record["metadata"]["drug"] == "rux"
    summary = pd.read_csv(out / "summary.csv")
    assert summary["image_id"].tolist() == ids
    assert summary["timepoint"].tolist() == [0, 1, 2]
    assert set(summary["channel_names"]) == {"LED555;LED470"}
    loaded = loader.load(out)
    assert sorted(loaded.images["image_id"]) == ids
    assert {"drug", "pixel_size_um", "acquired_at", "elapsed_s", "timepoint"} <= set(
        loaded.cells.columns
    )
    assert set(loaded.cells["image_id"]) <= set(ids)
