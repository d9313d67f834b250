"""An OME-Zarr in an S3 bucket beyond the budget is analysed in blocks (issue 15), chunk by chunk.

The same NGFF 0.4 image (Zarr v2, 128² chunks) lies in a local folder and in a bucket of the
S3 server on 127.0.0.1 (moto, the real minio SDK). With a budget that sends it into 4 blocks,
both are analysed in blocks by the same code (:func:`~overnight.imaging.regions.zarr_regions`
over the image opened from the folder or from the store): the same cells, particles, labels
and ``image.ome.zarr``. A block's window fetches only the chunks it overlaps.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from counting_store import CountingStore
from overnight.imaging.limits import ReadLimits, block_working_set_bytes
from overnight.imaging.regions import zarr_regions
from overnight.imaging.zarr_store import open_zarr_in_store
from overnight.pipeline.block_run import blocked_field
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image, opened_image
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import OME_ZARR_NAME
from overnight.storage import S3Store, open_store
from overnight.synth.field import draw_field

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="needs zarr (overnight[formats])"
)

PIPELINE = "cytometry-classical"
SIZE, CORE_PX, HALO_PX, CHUNK_PX = 512, 256, 64, 128
SHAPE_ZCYX = (2, 2, SIZE, SIZE)
#: A 512² field in 4 blocks of 256² cores (read windows up to 384²).
LIMITS = ReadLimits(
    max_working_set_bytes=block_working_set_bytes(SHAPE_ZCYX, np.dtype("uint16"), CORE_PX, HALO_PX)
    + 1,
    max_block_core_px=CORE_PX,
    block_halo_px=HALO_PX,
)
KEY = "plate/field.ome.zarr"


def _write_ngff(path: Path, czyx: np.ndarray) -> Path:
    """An NGFF 0.4 image (Zarr v2) of ``czyx`` in ``CHUNK_PX``² chunks, 0.2 µm pixels."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    chunks = (1, 1, CHUNK_PX, CHUNK_PX)
    root.create_array("0", shape=czyx.shape, chunks=chunks, dtype=czyx.dtype)[...] = czyx
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"
    ]
    transform = {"type": "scale", "scale": [1.0, 1.0, 0.2, 0.2]}
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [transform]}],
        }
    ]
    return path


@pytest.fixture(scope="module")
def local_zarr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The field (``CZYX`` uint16, 2 channels, 2 z-slices) as a local OME-Zarr folder."""
    zcyx = draw_field(np.random.default_rng(4), SIZE).image[:2].astype(np.uint16)
    folder = tmp_path_factory.mktemp("local") / "plate"
    folder.mkdir()
    return _write_ngff(folder / "field.ome.zarr", np.ascontiguousarray(zcyx.transpose(1, 0, 2, 3)))


@pytest.fixture
def s3(new_s3_store: Callable[[str], S3Store], local_zarr: Path) -> S3Store:
    """A bucket holding the local OME-Zarr under :data:`KEY`, uploaded object by object."""
    store = new_s3_store("lab")
    for path in sorted(p for p in local_zarr.rglob("*") if p.is_file()):
        store.write_bytes(f"{KEY}/{path.relative_to(local_zarr).as_posix()}", path.read_bytes())
    return store


def _analyse(source: ImageSource, out: Path) -> tuple[Path, dict]:
    prepared = PreparedPipeline(load_pipeline(PIPELINE))
    results = DatasetResults(open_store(str(out)))
    result = analyse_image(source, prepared, results, limits=LIMITS, output_format="ome-zarr")
    assert result is not None
    return out / result.image_id, result.qc


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_s3_ome_zarr_beyond_the_budget_is_analysed_in_blocks_as_the_local_one(
    tmp_path: Path, local_zarr: Path, s3: S3Store
) -> None:
    remote = ImageSource(key=KEY, store=s3)
    local = ImageSource.file(local_zarr, dataset_dir=local_zarr.parent.parent)
    assert remote.image_id == local.image_id
    s3_folder, s3_qc = _analyse(remote, tmp_path / "s3")
    local_folder, local_qc = _analyse(local, tmp_path / "local")
    assert s3_qc["blocks"]["n"] == local_qc["blocks"]["n"] == 4
    cells = pd.read_csv(s3_folder / "cells.csv")
    assert len(cells) > 10
    pd.testing.assert_frame_equal(cells, pd.read_csv(local_folder / "cells.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(s3_folder / "pnps.csv"), pd.read_csv(local_folder / "pnps.csv")
    )
    np.testing.assert_array_equal(
        tifffile.imread(s3_folder / "labels.tif"), tifffile.imread(local_folder / "labels.tif")
    )
    # the blocked OME-Zarr output re-reads the S3 input by region: the local run's files
    s3_files = _files(s3_folder / OME_ZARR_NAME)
    assert s3_files and s3_files == _files(local_folder / OME_ZARR_NAME)


def test_a_block_of_an_s3_ome_zarr_fetches_only_the_chunks_its_window_overlaps(
    s3: S3Store,
) -> None:
    counting = CountingStore(s3)
    image = open_zarr_in_store(counting, KEY, limits=LIMITS)
    blocked = blocked_field(zarr_regions(image, LIMITS), KEY, LIMITS)
    assert blocked is not None and len(blocked.plan) == 4
    counting.reads.clear()
    ys, xs = blocked.plan.block(0, 0).read
    window = blocked.regions.read(ys, xs)
    assert window.shape == (2, 2, ys.stop - ys.start, xs.stop - xs.start)
    per_side = -(-(ys.stop - ys.start) // CHUNK_PX), -(-(xs.stop - xs.start) // CHUNK_PX)
    assert all(k.startswith(f"{KEY}/0/") for k in counting.reads), counting.reads
    # 2 channels x 2 z-slices x the 128² chunks under the window, of 64 in the image
    assert len(counting.reads) == 4 * per_side[0] * per_side[1] < 4 * (SIZE // CHUNK_PX) ** 2
    with opened_image(ImageSource(key=KEY, store=counting), load_pipeline(PIPELINE)) as whole:
        assert whole.blocks is None and whole.stack.data.shape == (2, 2, SIZE, SIZE)
