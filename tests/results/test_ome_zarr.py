"""``overnight run --format ome-zarr``: image + labels as NGFF, read back by ``ome-zarr``."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.results import loader
from overnight.results.ome_zarr import halve_image, halve_labels, ome_zarr_files

VENDOR = Path(__file__).parents[1] / "data" / "vendor"


def _write(files: dict[str, bytes], folder: Path) -> Path:
    for key, data in files.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)
    return folder


def _nodes(path: Path) -> dict[str, object]:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(str(path))
    assert location is not None, f"{path} is not an OME-Zarr location"
    return {Path(node.zarr.path).name: node for node in Reader(location)()}


def test_levels_halve_yx_and_labels_keep_their_ids() -> None:
    image = np.arange(2 * 3 * 6 * 5, dtype="uint16").reshape(2, 3, 6, 5)
    assert halve_image(image).shape == (2, 3, 3, 2) and halve_image(image).dtype == np.uint16
    labels = np.array([[5, 5, 0, 9], [5, 5, 0, 9]], "uint32")
    assert set(np.unique(halve_labels(labels))) <= {0, 5, 9}


pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ome_zarr") is None, reason="needs ome-zarr (the test extra)"
)


def test_a_large_field_gets_levels_with_scales_in_micrometres(tmp_path) -> None:
    image = np.random.default_rng(1).integers(0, 4000, (3, 2, 600, 520)).astype("uint16")
    labels = np.zeros((600, 520), "uint32")
    labels[10:60, 20:90], labels[300:420, 200:330] = 7, 70000
    files = ome_zarr_files(
        image, labels, name="f", pixel_size_um=0.25, z_step_um=1.5, channel_names=("a", "b")
    )
    nodes = _nodes(_write(files, tmp_path / "f.ome.zarr"))
    meta = nodes["f.ome.zarr"].metadata
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    scales = [t[0]["scale"] for t in meta["coordinateTransformations"]]
    assert scales == [[1.0, 1.5, 0.25, 0.25], [1.0, 1.5, 0.5, 0.5], [1.0, 1.5, 1.0, 1.0]]
    assert meta["channel_names"] == ["a", "b"]
    level0 = np.asarray(nodes["f.ome.zarr"].data[0])
    np.testing.assert_array_equal(level0, image.transpose(1, 0, 2, 3))
    cells = nodes["cells"]
    shapes = [np.asarray(d).shape for d in cells.data]
    assert shapes == [(3, 600, 520), (3, 300, 260), (3, 150, 130)]
    assert set(np.unique(np.asarray(cells.data[2]))) == {0, 7, 70000}


@pytest.mark.skipif(importlib.util.find_spec("aicspylibczi") is None, reason="needs formats")
def test_run_format_ome_zarr_writes_image_and_labels_that_ome_zarr_reads(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(VENDOR / "CD_s_1_t_3_c_2_z_5.czi", data / "CD.czi")
    out = tmp_path / "out"
    args = [str(data), "--out", str(out), "--pipeline", "cytometry-classical", "--workers", "1"]
    result = CliRunner().invoke(cli, ["run", *args, "--format", "ome-zarr", "--quiet"])
    assert result.exit_code == 0, result.output
    for t in range(3):
        folder = out / f"CD~t00{t}"
        nodes = _nodes(folder / "image.ome.zarr")
        image, cells = nodes["image.ome.zarr"], nodes["cells"]
        assert [a["name"] for a in image.metadata["axes"]] == ["c", "z", "y", "x"]
        assert {a.get("unit") for a in image.metadata["axes"][1:]} == {"micrometer"}
        c_scale, z_um, y_um, x_um = image.metadata["coordinateTransformations"][0][0]["scale"]
        assert (z_um, y_um) == (pytest.approx(0.32), pytest.approx(0.0906, abs=1e-4))
        assert x_um == y_um and c_scale == 1.0
        assert image.metadata["channel_names"] == ["LED555", "LED470"]
        assert np.asarray(image.data[0]).shape == (2, 5, 170, 240)
        assert [a["name"] for a in cells.metadata["axes"]] == ["z", "y", "x"]
        assert cells.metadata["coordinateTransformations"][0][0]["scale"][1:] == [y_um, x_um]
        labels = tifffile.imread(folder / "labels.tif")
        for plane in np.asarray(cells.data[0]):
            np.testing.assert_array_equal(plane, labels)
    loaded = loader.load(out)
    assert len(loaded.images) == 3 and set(loaded.cells["timepoint"]) <= {"0", "1", "2"}


def test_a_field_without_its_pixels_is_refused_not_written_as_zeros() -> None:
    import pandas as pd

    from overnight.results.artefacts import result_artefacts
    from overnight.results.record import ImageResult

    record = ImageResult(
        image_id="a", source="big.tif", shape_zcyx=(1, 1, 4, 4), pixel_size_um=None,
        z_step_um=None, pipeline={}, versions={}, timings_s={}, summary={}, finished_at="x",
    )  # fmt: skip
    values = {
        "cell_labels": np.ones((4, 4), "uint16"),
        "cells_table": pd.DataFrame(),
        "pnps_table": pd.DataFrame(),
        "qc_png": b"",
    }
    shape_only = np.broadcast_to(np.zeros((), "uint16"), (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"big\.tif.*analysed in blocks.*--format tiff"):
        result_artefacts(values, record, output_format="ome-zarr", image_zcyx=shape_only)
    pixels = np.ones((1, 1, 4, 4), "uint16")
    files = result_artefacts(values, record, output_format="ome-zarr", image_zcyx=pixels)
    assert "image.ome.zarr/zarr.json" in files and "image.ome.zarr/labels/cells/zarr.json" in files
    assert "image.ome.zarr/zarr.json" not in result_artefacts(values, record)
