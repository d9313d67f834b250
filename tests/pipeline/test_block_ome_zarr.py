"""``--format ome-zarr`` for a field analysed in blocks (issue 15): written, not ignored.

The field's ``image.ome.zarr`` is read back with the independent ``ome-zarr`` reader: its
image levels equal those the whole-field path writes for the same field, its labels are the
block run's ``labels.tif`` at every level, every file is the one the whole-field writer makes
of that image and those labels, and ``overnight.results.load`` reads the result.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from overnight.imaging import read_stack
from overnight.imaging.limits import ReadLimits, block_working_set_bytes
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.runner import PreparedPipeline
from overnight.results import loader
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import OME_ZARR_NAME, ome_zarr_files
from overnight.storage import open_store
from overnight.synth.field import draw_field

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ome_zarr") is None, reason="needs ome-zarr (the test extra)"
)

PIPELINE = "cytometry-classical"
SIZE, CORE_PX, HALO_PX = 512, 256, 64
SHAPE_ZCYX = (2, 2, SIZE, SIZE)
#: A 512² field in 4 blocks of 256² cores; its OME-Zarr has 2 levels.
LIMITS = ReadLimits(
    max_working_set_bytes=block_working_set_bytes(SHAPE_ZCYX, np.dtype("uint16"), CORE_PX, HALO_PX)
    + 1,
    max_block_core_px=CORE_PX,
    block_halo_px=HALO_PX,
)


def _nodes(path: Path) -> dict[str, Any]:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(str(path))
    assert location is not None, f"{path} is not an OME-Zarr location"
    return {Path(node.zarr.path).name: node for node in Reader(location)()}


def _analyse(image: Path, out: Path, limits: ReadLimits) -> Path:
    prepared = PreparedPipeline(load_pipeline(PIPELINE))
    results = DatasetResults(open_store(str(out)))
    result = analyse_image(
        ImageSource.file(image), prepared, results, limits=limits, output_format="ome-zarr"
    )
    assert result is not None
    assert ("blocks" in result.qc) == (limits is LIMITS)
    return out / result.image_id


def test_a_field_in_blocks_writes_the_ome_zarr_of_the_whole_field_path(tmp_path) -> None:
    image = tmp_path / "in" / "field.ome.tif"
    image.parent.mkdir()
    pixels = draw_field(np.random.default_rng(4), SIZE).image[:2].astype(np.uint16)
    tifffile.imwrite(
        image,
        pixels,
        ome=True,
        tile=(128, 128),
        compression="zlib",
        metadata={"axes": "ZCYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2},
    )
    whole = _analyse(image, tmp_path / "whole", ReadLimits())
    blocked = _analyse(image, tmp_path / "blocks", LIMITS)
    whole_nodes, nodes = _nodes(whole / OME_ZARR_NAME), _nodes(blocked / OME_ZARR_NAME)
    assert set(nodes) == set(whole_nodes) == {OME_ZARR_NAME, "labels", "cells"}
    for name in (OME_ZARR_NAME, "cells"):
        meta, whole_meta = nodes[name].metadata, whole_nodes[name].metadata
        assert meta["axes"] == whole_meta["axes"]
        assert meta["coordinateTransformations"] == whole_meta["coordinateTransformations"]
    assert nodes[OME_ZARR_NAME].metadata["channel_names"] == ["channel 0", "channel 1"]
    levels = [np.asarray(level) for level in nodes[OME_ZARR_NAME].data]
    assert len(levels) == 2 and levels[0].shape == (2, 2, SIZE, SIZE)
    for level, whole_level in zip(levels, whole_nodes[OME_ZARR_NAME].data, strict=True):
        assert np.array_equal(level, np.asarray(whole_level))
    np.testing.assert_array_equal(levels[0], pixels.transpose(1, 0, 2, 3))
    labels = tifffile.imread(blocked / "labels.tif")
    assert labels.max() > 0
    for index, level in enumerate(nodes["cells"].data):
        step = 2**index
        expected = np.broadcast_to(labels[::step, ::step], (2, *labels[::step, ::step].shape))
        assert np.array_equal(np.asarray(level), expected), index
    # every file is the whole-field writer's for this image and these labels
    files = ome_zarr_files(
        read_stack(image).data,
        labels,
        name="field",
        pixel_size_um=0.2,
        z_step_um=None,
        channel_names=None,
    )
    for key, data in files.items():
        assert (blocked / OME_ZARR_NAME / key).read_bytes() == data, key
    written = {
        p.relative_to(blocked / OME_ZARR_NAME).as_posix()
        for p in (blocked / OME_ZARR_NAME).rglob("*")
        if p.is_file()
    }
    assert written == set(files)
    loaded = loader.load(tmp_path / "blocks")
    assert loaded.images["image_id"].tolist() == ["field"]
    assert len(loaded.cells) == len(np.unique(labels[labels > 0]))
