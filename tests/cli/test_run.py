"""End to end: ``overnight run`` on generated fields, scored against the generator's truth."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

import overnight.results
from overnight.cli.main import cli
from overnight.errors import InvalidImageError
from overnight.evaluation.cytometry import score_dataset
from overnight.imaging import ReadLimits, relative_stem_of
from overnight.imaging.limits import check_working_set, working_set_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adversarial import write_adversarial_folder  # noqa: E402

PIPELINE = "cytometry-classical"


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def classical_results(tmp_path_factory, small_dataset) -> Path:
    out = tmp_path_factory.mktemp("out")
    code, stdout, stderr = run_cli(
        str(small_dataset / "images"), "--out", str(out), "--pipeline", PIPELINE, "--workers", "1"
    )
    assert code == 0, stdout + stderr
    return out


def test_every_image_gets_the_output_format(classical_results, small_dataset):
    image_ids = sorted(
        p.name.removesuffix(".tif") for p in (small_dataset / "images").glob("*.tif")
    )
    for image_id in image_ids:
        folder = classical_results / image_id
        for name in (
            "labels.tif",
            "cells.csv",
            "pnps.csv",
            "qc.png",
            "result.json",
            "manifest.json",
        ):
            assert (folder / name).is_file(), f"{image_id}/{name} missing"
        cells = pd.read_csv(folder / "cells.csv")
        assert list(cells.columns[:6]) == ["cell_id", "y", "x", "area_px", "cell_type", "pnp_count"]
        pnps = pd.read_csv(folder / "pnps.csv")
        assert list(pnps.columns[:5]) == ["z", "y", "x", "cell_id", "intensity"]
        labels = tifffile.imread(folder / "labels.tif")
        assert labels.ndim == 2 and labels.dtype.kind == "u"
        assert set(cells.cell_id) == set(labels[labels > 0].ravel().tolist())
        assert set(pnps.cell_id) <= set(cells.cell_id) | {0}
        record = json.loads((folder / "result.json").read_text())
        assert record["pipeline"]["name"] == PIPELINE
        assert record["versions"]["detect_pnps"] and record["timings_s"]["detect_pnps"] >= 0
        assert record["metadata"]["sample"].startswith("S0")  # from the file-name convention
    summary = pd.read_csv(classical_results / "summary.csv")
    assert sorted(summary.image_id) == image_ids
    assert {
        "n_cells",
        "n_pnps",
        "pnp_per_lymphocyte_mean",
        "pnp_per_monocyte_vmr",
        "sample",
    } <= set(summary.columns)


def test_classical_steps_score_against_truth(classical_results, small_dataset):
    score = score_dataset(small_dataset / "truth", classical_results)
    # What Otsu + watershed + LoG really achieve on these fields (a regression guard).
    # Measured on these six fields: F1 0.98, IoU 0.91, type 1.0, count MAE 5.0, PNP F1 0.82.
    assert score.cell_f1 >= 0.93
    assert score.mean_iou >= 0.85
    assert score.type_accuracy >= 0.95
    assert score.count_mae <= 8.0
    assert score.pnp_f1 >= 0.70


def test_results_load_into_dataframes_with_metadata(classical_results):
    res = overnight.results.load(classical_results)
    assert len(res.images) == 6
    assert {"image_id", "sample", "user", "cell_type", "pnp_count"} <= set(res.cells.columns)
    per_sample = res.cells.groupby("sample").pnp_count.mean()
    assert len(per_sample) >= 2


def test_rerun_skips_complete_results_and_force_redoes_them(classical_results, small_dataset):
    manifest = next(classical_results.glob("*/manifest.json"))
    before = manifest.stat().st_mtime_ns
    again = (str(small_dataset / "images"), "--out", str(classical_results))
    options = ("--pipeline", PIPELINE, "--workers", "1")
    code, stdout, _ = run_cli(*again, *options)
    assert code == 0 and "6 skipped" in stdout
    assert manifest.stat().st_mtime_ns == before
    code, stdout, _ = run_cli(*again, *options, "--force")
    assert code == 0 and "6 done" in stdout
    assert manifest.stat().st_mtime_ns != before


def test_bad_images_fail_one_by_one_and_the_good_ones_are_written(
    images_copy, tmp_path, write_bad_images
):
    expected = write_bad_images(images_copy)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        str(images_copy), "--out", str(out), "--pipeline", PIPELINE, "--workers", "2"
    )
    assert code == 1
    failures = {f["image_id"]: f for f in json.loads((out / "failures.json").read_text())}
    assert set(failures) == set(expected)
    for image_id, words in expected.items():
        assert image_id in stderr
        assert words.lower() in failures[image_id]["reason"].lower(), failures[image_id]["reason"]
    done = [p.parent.name for p in out.glob("*/manifest.json")]
    assert len(done) == 6 and not set(done) & set(expected)


def test_a_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    code, stdout, stderr = run_cli(str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert code != 0 and "no TIFF images" in stdout + stderr


def test_an_unwritable_output_is_a_clear_error(images_copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, stdout, stderr = run_cli(
        str(images_copy), "--out", str(blocker / "out"), "--pipeline", PIPELINE
    )
    assert code != 0 and str(blocker) in stdout + stderr


def test_help_explains_the_outputs():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0 and "summary.csv" in result.output and "--workers" in result.output


def test_the_adversarial_folder_loses_nothing(small_dataset, tmp_path):
    """Issue 13: every image-named entry is analysed or listed with a reason in failures.json."""
    image = sorted((small_dataset / "images").glob("*.tif"))[0]
    root = tmp_path / "data"
    found = write_adversarial_folder(root, image, tmp_path / "elsewhere")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        str(root), "--out", str(out), "--pipeline", PIPELINE, "--workers", "1"
    )
    assert code != 0  # some entries cannot be analysed
    summary = pd.read_csv(out / "summary.csv")
    failures = json.loads((out / "failures.json").read_text())
    analysed = {relative_stem_of(i) for i in summary.image_id}
    failed = {relative_stem_of(f["image_id"]): f["reason"] for f in failures}
    assert all(failed.values())
    stems = {f.removesuffix(".ome.tif").removesuffix(".tif") for f in found}
    assert analysed | set(failed) == (stems - {"a"}) | {"a", "a.tif"}  # a.tif: a.ome.tif's id
    assert {"drug-rux/X", "drug-placebo/X", "summary.csv", "cellule é 1", "outside"} <= analysed
    assert len(summary) == len(analysed) == 9
    assert {"dangling", "folder"} <= set(failed) and "same image id" in failed["a.tif"]
    for name in ("summary.csv", "failures.json"):
        assert (out / name).is_file()  # never a folder of an image's result
    assert "not analysed: dangling.tif" in stderr


def _write_zero_mosaic(path: Path, shape: tuple[int, ...], axes: str) -> None:
    """A deflate-compressed tiled TIFF of zeros: a few hundred kB that declare ``shape``."""
    tile = 1024
    n_tiles = math.prod(shape[:-2]) * (shape[-2] // tile) * (shape[-1] // tile)
    zeros = np.zeros((tile, tile), np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        (zeros for _ in range(n_tiles)),
        shape=shape,
        dtype=np.uint16,
        tile=(tile, tile),
        compression="zlib",
        metadata={"axes": axes},
    )


def test_an_image_beyond_the_working_set_is_refused_up_front(tmp_path, monkeypatch):
    """Issue 13 #3: a 635 kB file declaring 2 x 12288² uint16 must not take 19 GB.

    Within the default budget it is analysed in blocks (tests/pipeline/test_blocks.py); a
    budget too small for even the smallest block refuses it before any pixel is decoded.
    """
    name = "20261125_0930_jdoe_darkfield1_S01_field-001.tif"
    _write_zero_mosaic(tmp_path / "in" / name, (2, 12288, 12288), "CYX")
    assert (tmp_path / "in" / name).stat().st_size < 2**20
    monkeypatch.setenv("OVERNIGHT_MAX_WORKING_SET_GB", "1.12")
    code, stdout, stderr = run_cli(
        str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--pipeline", PIPELINE
    )
    assert code != 0
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    reason = failures[0]["reason"]
    assert failures[0]["source"].endswith(name)
    for words in ("12288x12288", "576.0 MiB", "OVERNIGHT_MAX_WORKING_SET_GB", "1.1 GiB"):
        assert words in reason, reason


def test_the_working_set_estimate_is_monotone_and_names_the_setting():
    small = working_set_bytes((1, 2, 512, 512), np.dtype("uint16"))
    assert small < working_set_bytes((1, 2, 2048, 2048), np.dtype("uint16"))
    assert small < working_set_bytes((24, 2, 512, 512), np.dtype("uint16"))
    check_working_set("a.tif", (1, 2, 2048, 2048), np.dtype("uint16"), ReadLimits())
    with pytest.raises(InvalidImageError, match="OVERNIGHT_MAX_WORKING_SET_GB"):
        check_working_set(
            "a.tif", (1, 2, 2048, 2048), np.dtype("uint16"), ReadLimits.with_working_set_gb(0.5)
        )


def test_an_image_that_kills_its_worker_fails_alone(tmp_path, monkeypatch):
    """Issue 13 #2 in the embedded run: a dead worker process no longer fails every image."""
    import os
    import signal

    from overnight.pipeline import batch

    names = (
        [f"good-{i}.tif" for i in range(3)] + ["poison.tif"] + [f"late-{i}.tif" for i in range(3)]
    )
    for name in names:
        (tmp_path / name).write_bytes(b"")

    def analyse(self, path):  # forked into the workers
        if path.name == "poison.tif":
            os.kill(os.getpid(), signal.SIGKILL)
        return batch.ImageOutcome(path.stem, str(path), "done")

    monkeypatch.setattr(batch.ImageAnalyser, "analyse", analyse)
    paths = sorted(tmp_path.glob("*.tif"))
    options = batch.BatchOptions(pipeline=PIPELINE, out_url=str(tmp_path / "out"))
    outcomes = {o.image_id: o for o in batch.run_batch(paths, options, workers=2)}
    assert {i for i, o in outcomes.items() if o.status == "done"} == {
        p.removesuffix(".tif") for p in names if p != "poison.tif"
    }
    assert outcomes["poison"].status == "failed"
    assert "worker died 2 times (memory limit?)" in outcomes["poison"].reason
