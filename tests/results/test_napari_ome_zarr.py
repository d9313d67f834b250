"""napari's OME-Zarr reader (``napari-ome-zarr``) opens what ``overnight run --format ome-zarr``
writes: one image layer per channel and the cell labels, at their size in µm.

The reader is the plugin's own ``napari_get_reader`` (what napari calls when a user drops
``image.ome.zarr`` on its window), run without a GUI: ``napari`` is installed without a Qt
binding (the test extra), and the reader only needs its colormaps and transforms.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.synth.dataset import write_dataset

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("napari_ome_zarr") is None and not os.environ.get("CI"),
        reason="needs napari-ome-zarr (the test extra)",
    ),
    # napari's plugin engine (npe2) still defines its models with pydantic 1 idioms.
    pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince20"),
]

#: Larger than ome_zarr.MIN_LEVEL_PX (256): two levels, 320² and 160².
SIZE = 320
#: What the synthetic fields' TIFF tags say (µm).
PIXEL_UM, Z_STEP_UM = 0.2, 0.5


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The result folder of one generated 2-channel field, analysed with ``--format ome-zarr``."""
    base = tmp_path_factory.mktemp("napari")
    (image,) = write_dataset(base / "synth", 1, seed=11, size=SIZE)
    out = base / "out"
    args = [str(image.parent), "--out", str(out), "--pipeline", "cytometry-classical"]
    outcome = CliRunner().invoke(cli, ["run", *args, "--format", "ome-zarr", "--quiet"])
    assert outcome.exit_code == 0, outcome.output
    return out / image.name.removesuffix(".tif")


def layers(path: Path) -> dict[str, tuple[list[Any], dict[str, Any]]]:
    """``{layer type: (data levels, layer keywords)}`` as napari-ome-zarr gives them."""
    from napari_ome_zarr._reader import napari_get_reader

    reader = napari_get_reader(str(path))
    assert reader is not None, f"napari-ome-zarr does not take {path}"
    found = [(kind, (list(data), kwargs)) for data, kwargs, kind in reader(str(path))]
    kinds = [kind for kind, _ in found]
    assert sorted(kinds) == ["image", "labels"], kinds
    return dict(found)


def test_napari_opens_image_and_labels_at_their_size_in_micrometres(result: Path) -> None:
    stack = tifffile.imread(result.parents[1] / "synth" / "images" / f"{result.name}.tif")
    labels_yx = tifffile.imread(result / "labels.tif")
    z, c = stack.shape[:2]
    assert (z, c) == (10, 2) and labels_yx.shape == (SIZE, SIZE)
    found = layers(result / "image.ome.zarr")

    image, kwargs = found["image"]
    assert [level.shape for level in image] == [(c, z, SIZE, SIZE), (c, z, SIZE // 2, SIZE // 2)]
    assert kwargs["channel_axis"] == 0  # one napari layer per channel
    assert kwargs["name"] == [f"{result.name}: cell", f"{result.name}: pnp"]
    assert kwargs["scale"] == pytest.approx([Z_STEP_UM, PIXEL_UM, PIXEL_UM])
    assert kwargs["units"] == ("micrometer",) * 3
    np.testing.assert_array_equal(np.asarray(image[0]), stack.transpose(1, 0, 2, 3))

    labels, kwargs = found["labels"]
    assert [level.shape for level in labels] == [(z, SIZE, SIZE), (z, SIZE // 2, SIZE // 2)]
    assert kwargs["scale"] == pytest.approx([Z_STEP_UM, PIXEL_UM, PIXEL_UM])
    assert kwargs["units"] == ("micrometer",) * 3
    full = np.asarray(labels[0])
    assert len(np.unique(labels_yx)) > 2, "a field with cells"
    for plane in full:  # the YX segmentation, on every Z, with the ids of labels.tif
        np.testing.assert_array_equal(plane, labels_yx)
    # The smaller level keeps label ids (no averaging between cells).
    assert set(np.unique(np.asarray(labels[1]))) <= set(np.unique(labels_yx))
