from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import tifffile

from overnight.evaluation import read_field_tables
from overnight.imaging.reader import read_stack
from overnight.synth import CytometryRanges, FieldParams, draw_field, image_id_for, write_dataset


def test_image_ids_follow_the_lab_convention():
    ids = [image_id_for(i) for i in range(5)]
    assert ids[0] == "20261125_0930_synth_darkfield_S01_field-001"
    assert ids[4] == "20261125_0938_synth_darkfield_S01_field-005"
    pattern = re.compile(r"^\d{8}_\d{4}_synth_darkfield_S0[1-4]_field-\d{3}$")
    assert all(pattern.match(i) for i in ids)


def test_write_dataset_files_round_trip_and_are_reproducible(tmp_path):
    paths = write_dataset(tmp_path / "a", n=2, seed=5, size=256)
    write_dataset(tmp_path / "b", n=2, seed=5, size=256)
    assert [p.name for p in paths] == [f"{image_id_for(i)}.tif" for i in range(2)]
    with tifffile.TiffFile(paths[0]) as tif:
        series = tif.series[0]
        assert series.axes == "ZCYX" and series.dtype == np.uint16
        image = series.asarray()
        assert tif.is_ome
    stack = read_stack(paths[0])  # the pipeline's reader finds the calibration
    assert (stack.pixel_size_um, stack.z_step_um) == (0.2, 0.5)
    assert stack.channel_names == ("cell", "pnp")
    assert image.ndim == 4 and image.shape[1:] == (2, 256, 256)
    first = draw_field(np.random.default_rng(np.random.SeedSequence(5).spawn(2)[0]), size=256)
    assert np.array_equal(image, first.image)
    truth = read_field_tables(tmp_path / "a" / "truth" / paths[0].stem)
    assert np.array_equal(truth.labels, first.labels)
    pd.testing.assert_frame_equal(truth.cells, first.cells, check_dtype=False)
    pd.testing.assert_frame_equal(truth.pnps, first.pnps, check_dtype=False)
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files_b = sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert files_a == files_b and len(files_a) == 2 * 5 + 1
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_the_manifest_records_seed_and_ranges(tmp_path):
    ranges = CytometryRanges(snr=(6.0, 7.0))
    write_dataset(tmp_path, n=1, seed=9, size=256, ranges=ranges, cell_types=("monocyte",))
    manifest = json.loads((tmp_path / "synth.json").read_text())
    assert (manifest["seed"], manifest["n"], manifest["size"]) == (9, 1, 256)
    assert manifest["cell_types"] == ["monocyte"]
    assert CytometryRanges.model_validate(manifest["ranges"]) == ranges
    (truth,) = (tmp_path / "truth").iterdir()
    assert 6.0 <= FieldParams.model_validate_json((truth / "params.json").read_text()).snr <= 7.0
