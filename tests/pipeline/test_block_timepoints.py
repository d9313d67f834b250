"""A TIFF with several timepoints beyond the budget: analysed in blocks, a timepoint at a time.

Each timepoint of the movie (OME-TIFF tiled or striped and compressed, read through tifffile's
Zarr view; an ImageJ hyperstack, memory-mapped) is its own result with the id the whole-field
path gives it (``movie~t001``), and the cells, counts and labels of the same timepoint saved
alone and analysed in the same blocks; where both fit, the counts of the whole-field run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile

from overnight.errors import InvalidImageError
from overnight.evaluation.matching import match_labels
from overnight.imaging.limits import ReadLimits, block_working_set_bytes
from overnight.imaging.regions import open_regions
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.synth.field import draw_field

PIPELINE = "cytometry-classical"
SIZE, CORE_PX, HALO_PX, N_Z = 384, 128, 96, 2
SHAPE_ZCYX = (N_Z, 2, SIZE, SIZE)
#: Limits that send one 384² timepoint into 9 blocks of 128² cores with 96 px of context.
LIMITS = ReadLimits(
    max_working_set_bytes=block_working_set_bytes(SHAPE_ZCYX, np.dtype("uint16"), CORE_PX, HALO_PX)
    + 1,
    max_block_core_px=CORE_PX,
    block_halo_px=HALO_PX,
)
#: How each movie is written: (file name, tifffile.imwrite options).
MOVIES: dict[str, tuple[str, dict[str, Any]]] = {
    "ome-tiled": ("movie.ome.tif", {"ome": True, "tile": (128, 128), "compression": "zlib"}),
    "ome-striped": ("movie.ome.tif", {"ome": True, "compression": "zlib", "rowsperstrip": 32}),
    "imagej": ("movie.tif", {"imagej": True}),
}


@pytest.fixture(scope="module")
def timepoints() -> np.ndarray:
    """Two different synthetic fields as timepoints: T, Z, C, Y, X uint16."""
    fields = [draw_field(np.random.default_rng(seed), SIZE).image[:N_Z] for seed in (4, 5)]
    return np.stack(fields).astype(np.uint16)


def _run(inputs: Path, out: Path, limits: ReadLimits) -> dict[str, dict[str, Any]]:
    """``run_batch`` over ``inputs``: per image id, its record, labels and tables."""
    options = BatchOptions(pipeline=PIPELINE, out_url=str(out), limits=limits)
    outcomes = run_batch(sorted(inputs.iterdir()), options)
    assert [o.status for o in outcomes] == ["done"] * len(outcomes), outcomes
    return {
        o.image_id: {
            "record": json.loads((out / o.image_id / "result.json").read_text()),
            "labels": tifffile.imread(out / o.image_id / "labels.tif"),
            "cells": pd.read_csv(out / o.image_id / "cells.csv"),
            "pnps": pd.read_csv(out / o.image_id / "pnps.csv"),
        }
        for o in outcomes
    }


@pytest.fixture(scope="module")
def alone(timepoints: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Each timepoint saved alone as a plain OME-TIFF and analysed in blocks."""
    inputs = tmp_path_factory.mktemp("alone")
    for t, field in enumerate(timepoints):
        tifffile.imwrite(inputs / f"t{t}.ome.tif", field, ome=True, metadata={"axes": "ZCYX"})
    results = _run(inputs, tmp_path_factory.mktemp("alone-out"), LIMITS)
    for t in range(len(timepoints)):
        assert results[f"t{t}"]["record"]["qc"]["blocks"]["n"] == 9
    return [results[f"t{t}"] for t in range(len(timepoints))]


def _write_movie(folder: Path, timepoints: np.ndarray, kind: str) -> Path:
    name, options = MOVIES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    metadata: dict[str, Any] = {"axes": "TZCYX"}
    if options.get("ome"):
        n_planes = N_Z * 2
        metadata |= {
            "AcquisitionDate": "2026-03-01T10:00:00",
            "Plane": {"DeltaT": [t * 600.0 for t in range(2) for _ in range(n_planes)]},
        }
    else:
        metadata |= {"finterval": 600.0}
    tifffile.imwrite(path, timepoints, metadata=metadata, **options)
    return path


def _assert_same_analysis(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert np.array_equal(got["labels"], expected["labels"])
    pd.testing.assert_frame_equal(got["cells"], expected["cells"])
    pd.testing.assert_frame_equal(got["pnps"], expected["pnps"])
    assert got["record"]["summary"] == expected["record"]["summary"]


@pytest.mark.parametrize("kind", list(MOVIES))
def test_each_timepoint_of_a_movie_is_analysed_in_blocks_like_it_saved_alone(
    kind: str, timepoints: np.ndarray, alone: list[dict], tmp_path: Path
) -> None:
    movie = _write_movie(tmp_path / "in", timepoints, kind)
    with open_regions(movie, timepoint=1) as regions:  # memory-mapped only for ImageJ's
        assert regions.shape_zcyx == SHAPE_ZCYX
        assert ("_tiff_zarr_reader" in regions.reader.__qualname__) == (kind != "imagej")
        np.testing.assert_array_equal(
            regions.read(slice(100, 300), slice(7, 384)), timepoints[1][:, :, 100:300, 7:]
        )
    results = _run(tmp_path / "in", tmp_path / "out", LIMITS)
    assert sorted(results) == ["movie~t000", "movie~t001"]
    for t in range(2):
        got = results[f"movie~t00{t}"]
        assert got["record"]["qc"]["blocks"]["n"] == 9
        assert got["record"]["shape_zcyx"] == list(SHAPE_ZCYX)
        acquisition = got["record"]["acquisition"]
        assert acquisition["timepoint"] == str(t) and acquisition["elapsed_s"] == str(t * 600.0)
        _assert_same_analysis(got, alone[t])
    counts = [results[f"movie~t00{t}"]["record"]["summary"]["n_cells"] for t in range(2)]
    assert counts[0] != counts[1], "each timepoint is its own field"


def test_a_movie_in_blocks_gives_the_timepoints_of_the_whole_field_run(
    timepoints: np.ndarray, alone: list[dict], tmp_path: Path
) -> None:
    """Same ids and acquisition fields as the whole-field run; its cells and counts.

    As for one field (``test_block_statistics``): the same number of cells, F1 ≥ 0.99 between
    the label images, counts ≥ 97 % the same (blocks see particles near seams a little
    differently, so the totals of particles may differ by a few).
    """
    _write_movie(tmp_path / "in", timepoints, "ome-tiled")
    whole = _run(tmp_path / "in", tmp_path / "whole", ReadLimits())
    blocked = _run(tmp_path / "in", tmp_path / "blocks", LIMITS)
    assert sorted(whole) == sorted(blocked) == ["movie~t000", "movie~t001"]
    for image_id, expected in whole.items():
        got = blocked[image_id]
        assert "blocks" not in expected["record"]["qc"] and got["record"]["qc"]["blocks"]["n"] == 9
        assert got["record"]["acquisition"] == expected["record"]["acquisition"]
        cells, block_cells = expected["cells"], got["cells"]
        assert len(block_cells) == len(cells)
        matches = match_labels(expected["labels"], got["labels"])
        f1 = 2 * len(matches.true_ids) / (len(cells) + len(block_cells))
        assert f1 >= 0.99, f1
        count_of = dict(zip(cells["cell_id"], cells["pnp_count"], strict=True))
        block_count_of = dict(zip(block_cells["cell_id"], block_cells["pnp_count"], strict=True))
        pairs = zip(matches.true_ids, matches.pred_ids, strict=True)
        same = [count_of[a] == block_count_of[b] for a, b in pairs]
        assert np.mean(same) >= 0.97, (image_id, np.mean(same))


def test_a_movie_without_a_timepoint_is_refused_by_region_naming_the_choice(
    timepoints: np.ndarray, tmp_path: Path
) -> None:
    movie = _write_movie(tmp_path, timepoints, "ome-tiled")
    with pytest.raises(InvalidImageError, match=r"2 timepoints.*timepoint=0\.\.1"):
        with open_regions(movie):
            pass
    with pytest.raises(InvalidImageError, match="out of range"):
        with open_regions(movie, timepoint=2):
            pass
