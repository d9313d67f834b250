"""Finding and ordering the stacks of a skin series: names, sidecars, per-depth files, T axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.errors import InvalidImageError, NoImagesError
from overnight.skin.series import find_series, read_timepoint

BASE = "20261125_0900_me_srs_skin1"


def test_unsorted_names_are_ordered_by_time(tmp_path: Path, write_stack) -> None:
    # by name the order would be 120, 30, 5 (text sort); by time it is 5, 30, 120
    for minutes, value in ((30, 300), (120, 1200), (5, 50)):
        write_stack(tmp_path / f"{BASE}_t-{minutes}min.tif", n_z=3, value=value)
    series = find_series(tmp_path)
    assert [tp.time_min for tp in series.timepoints] == [5.0, 30.0, 120.0]
    assert [tp.image_id for tp in series.timepoints] == [
        f"{BASE}_t-5min", f"{BASE}_t-30min", f"{BASE}_t-120min",
    ]  # fmt: skip
    assert not series.problems
    # no depth anywhere: 1 µm apart, and said so
    assert series.timepoints[0].depths_um == (0.0, 1.0, 2.0)
    assert any("1 µm apart" in w for w in series.warnings)
    assert read_timepoint(series.timepoints[1])[2, 0, 0, 0] == 302  # value + z of the 30 min stack


def test_sidecar_gives_time_and_depths_for_any_name(tmp_path: Path, write_stack) -> None:
    write_stack(tmp_path / "late.tif", sidecar={"time_min": 90, "depths_um": [40.0, 10.0]})
    write_stack(tmp_path / "early.tif", sidecar={"time_min": 15.5, "depths_um": [10.0, 40.0]})
    series = find_series(tmp_path)
    early, late = series.timepoints
    assert (early.image_id, early.time_min, early.depths_um) == ("early", 15.5, (10.0, 40.0))
    # planes are put in depth order even when the file lists them deepest first
    assert late.depths_um == (10.0, 40.0)
    assert [p.z_index for p in late.planes] == [1, 0]
    assert read_timepoint(late)[:, 0, 0, 0].tolist() == [101, 100]


def test_sidecar_time_overrides_the_name(tmp_path: Path, write_stack) -> None:
    write_stack(tmp_path / f"{BASE}_t-30min.tif", sidecar={"time_min": 45, "depths_um": [0, 5]})
    assert find_series(tmp_path).timepoints[0].time_min == 45.0


def test_one_file_per_depth_is_stacked_by_depth(tmp_path: Path, write_stack) -> None:
    for minutes in (60, 10):
        for depth, value in ((40, 400), (0, 0), (20, 200)):
            write_stack(tmp_path / f"{BASE}_t-{minutes}min_depth-{depth}um.tif", n_z=1, value=value)
    series = find_series(tmp_path)
    assert [tp.time_min for tp in series.timepoints] == [10.0, 60.0]
    first = series.timepoints[0]
    assert first.depths_um == (0.0, 20.0, 40.0)
    assert first.image_id == f"{BASE}_t-10min"
    stack = read_timepoint(first)
    assert stack.shape == (3, 2, 16, 16)
    assert stack[:, 1, 0, 0].tolist() == [0, 200, 400]


def test_tczyx_file_with_times_in_a_sidecar(tmp_path: Path, write_stack) -> None:
    data = np.arange(3 * 2 * 2, dtype=np.uint16).reshape(3, 2, 2, 1, 1) * np.ones(
        (1, 1, 1, 8, 8), np.uint16
    )
    path = tmp_path / "series.tif"
    tifffile.imwrite(path, data, metadata={"axes": "TZCYX"})
    (tmp_path / "series.json").write_text(
        json.dumps({"times_min": [0, 20, 45], "depths_um": [0, 30]})
    )
    series = find_series(path)
    assert [tp.time_min for tp in series.timepoints] == [0.0, 20.0, 45.0]
    assert [tp.image_id for tp in series.timepoints] == [
        "series_t000",
        "series_t001",
        "series_t002",
    ]
    assert series.timepoints[2].depths_um == (0.0, 30.0)
    assert read_timepoint(series.timepoints[2])[1, 1, 0, 0] == data[2, 1, 1, 0, 0]


def test_tczyx_without_times_falls_back_to_the_index_with_a_warning(
    tmp_path: Path, write_stack
) -> None:
    path = tmp_path / "series.tif"
    tifffile.imwrite(path, np.ones((2, 1, 2, 8, 8), np.uint16), metadata={"axes": "TZCYX"})
    series = find_series(path)
    assert [tp.time_min for tp in series.timepoints] == [0.0, 1.0]
    assert any("T index taken as minutes" in w for w in series.warnings)


def test_bad_files_are_reported_and_the_rest_kept(tmp_path: Path, write_stack) -> None:
    write_stack(tmp_path / f"{BASE}_t-0min.tif")
    (tmp_path / f"{BASE}_t-10min.tif").write_bytes(b"not a tiff at all")
    write_stack(tmp_path / "no_time_here.tif")
    series = find_series(tmp_path)
    assert [tp.time_min for tp in series.timepoints] == [0.0]
    reasons = {Path(p.source).name: p.reason for p in series.problems}
    assert set(reasons) == {f"{BASE}_t-10min.tif", "no_time_here.tif"}
    assert (
        "not a TIFF" in reasons[f"{BASE}_t-10min.tif"] or "TIFF" in reasons[f"{BASE}_t-10min.tif"]
    )
    assert "no time" in reasons["no_time_here.tif"]


def test_one_channel_stack_fails_when_read(tmp_path: Path, write_stack) -> None:
    write_stack(tmp_path / f"{BASE}_t-0min.tif", n_c=1)
    (timepoint,) = find_series(tmp_path).timepoints
    with pytest.raises(InvalidImageError, match="needs 2"):
        read_timepoint(timepoint)


def test_dataset_folder_reads_its_images_subfolder(tiny_series: Path) -> None:
    series = find_series(tiny_series)  # truth/ holds labels.tif files that are not timepoints
    assert len(series.timepoints) == 6 and not series.problems
    times = [tp.time_min for tp in series.timepoints]
    assert times == sorted(times) and times[0] == 0.0
    sidecar = json.loads(next((tiny_series / "images").glob("*.json")).read_text())
    assert series.timepoints[0].depths_um == tuple(sidecar["depths_um"])


def test_empty_folder_is_an_error(tmp_path: Path, write_stack) -> None:
    with pytest.raises(NoImagesError):
        find_series(tmp_path)


def test_convention_sidecar_time(tmp_path: Path, write_stack) -> None:
    path = write_stack(tmp_path / "stack.tif")
    path.with_name("stack.tif.json").write_text('{"time_min": 12.5}')
    write_stack(tmp_path / "other.tif")
    (tmp_path / "other.meta.json").write_text('{"timepoint": "1h"}')
    series = find_series(tmp_path)
    assert [(tp.image_id, tp.time_min) for tp in series.timepoints] == [
        ("stack", 12.5),
        ("other", 60.0),
    ]
