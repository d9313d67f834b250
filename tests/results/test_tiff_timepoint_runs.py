"""A TIFF with a T axis through the runners: one result per timepoint, each with its own time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.imaging.reader import read_stack
from overnight.jobs.sources import image_id_of, list_source
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.runner import PreparedPipeline
from overnight.results import loader
from overnight.results.layout import DatasetResults
from overnight.storage import open_store
from overnight.synth.dataset import write_dataset

PIPELINE = "cytometry-classical"


def _movie(tmp_path: Path, path: Path) -> np.ndarray:
    """A 3-timepoint OME-TIFF of one synthetic field: t1 has its right half blanked."""
    field = read_stack(write_dataset(tmp_path / "synth", 1, seed=21, size=256)[0]).data
    blank = field.copy()
    blank[..., 128:] = field.min()
    movie = np.stack([field, blank, field])  # T, Z, C, Y, X
    n_planes = movie.shape[1] * movie.shape[2]
    metadata = {
        "axes": "TZCYX",
        "AcquisitionDate": "2026-03-01T10:00:00",
        "PhysicalSizeX": 0.65,
        "PhysicalSizeY": 0.65,
        "Plane": {
            "DeltaT": [t * 600.0 for t in range(3) for _ in range(n_planes)],
            "DeltaTUnit": ["s"] * (3 * n_planes),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, movie, ome=True, metadata=metadata)
    return movie


def test_overnight_run_gives_one_result_per_timepoint_with_its_time(tmp_path) -> None:
    data = tmp_path / "data"
    _movie(tmp_path, data / "drug-rux" / "movie.ome.tif")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["run", str(data), "--out", str(out), "--pipeline", PIPELINE, "--workers", "1", "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    ids = [f"drug-rux~2Fmovie~t00{t}" for t in range(3)]
    records = [json.loads((out / i / "result.json").read_text()) for i in ids]
    for t, record in enumerate(records):
        assert record["acquisition"]["timepoint"] == str(t)
        assert record["acquisition"]["elapsed_s"] == str(t * 600.0)
        assert record["acquisition"]["acquired_at"] == f"2026-03-01T10:{t * 10:02d}:00"
        assert record["pixel_size_um"] == pytest.approx(0.65)
        assert record["metadata"]["drug"] == "rux"
    counts = [record["summary"]["n_cells"] for record in records]
    assert counts[0] == counts[2] > counts[1] > 0, f"each timepoint is its own field: {counts}"
    summary = pd.read_csv(out / "summary.csv")
    assert summary["image_id"].tolist() == ids
    assert summary["timepoint"].tolist() == [0, 1, 2]
    loaded = loader.load(out)
    assert {"timepoint", "elapsed_s", "acquired_at"} <= set(loaded.cells.columns)


def test_a_tiff_in_s3_is_listed_per_timepoint_by_range_reads(tmp_path, new_s3_store) -> None:
    source = new_s3_store("nas")
    movie_path = tmp_path / "movie.ome.tif"
    _movie(tmp_path, movie_path)
    body = movie_path.read_bytes()
    source.write_bytes("drug-rux/movie.ome.tif", body)
    fetched: list[int] = []
    read_range = source.read_range

    def counting(key: str, offset: int, length: int) -> bytes:
        fetched.append(length)
        return read_range(key, offset, length)

    source.read_range = counting  # type: ignore[method-assign]
    source.download = None  # type: ignore[assignment, method-assign]  # listing never copies
    keys = [info.key for info in list_source(source).images]
    assert keys == [f"drug-rux/movie.ome.tif#t00{t}" for t in range(3)]
    assert 0 < sum(fetched) < len(body) / 2, (sum(fetched), len(body))
    del source.download
    prepared = PreparedPipeline(load_pipeline(PIPELINE))
    results = DatasetResults(open_store(str(tmp_path / "out")))
    remote = ImageSource(keys[1], source, id=image_id_of(keys[1]))
    result = analyse_image(remote, prepared, results)
    assert result is not None and result.image_id == "drug-rux~2Fmovie~t001"
    assert result.acquisition["timepoint"] == "1"
    assert result.acquisition["acquired_at"] == "2026-03-01T10:10:00"
    assert result.metadata["drug"] == "rux"
