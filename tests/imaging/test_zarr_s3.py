"""OME-Zarr on S3 (moto's server on 127.0.0.1, the real minio SDK): read lazily, chunk by chunk.

The stores are written here: NGFF 0.4 (Zarr v2, test_zarr_store.write_ngff) and NGFF 0.5
(Zarr v3, the writer of ``--format ome-zarr``), uploaded object by object.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from counting_store import CountingStore
from overnight.errors import InvalidImageError
from overnight.imaging.limits import ReadLimits
from overnight.imaging.zarr_store import open_zarr_in_store, read_zarr, read_zarr_tile
from overnight.results.ome_zarr import ome_zarr_files
from overnight.storage import ObjectStore, S3Store

from .test_zarr_store import TCZYX, write_ngff

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="needs zarr (overnight[formats])"
)


@pytest.fixture
def s3(new_s3_store: Callable[[str], S3Store]) -> S3Store:
    return new_s3_store("lab")


def _upload(store: ObjectStore, folder: Path, prefix: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        store.write_bytes(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def test_an_ngff_04_store_on_s3_reads_as_the_local_one_and_by_chunk(tmp_path, s3) -> None:
    _upload(s3, write_ngff(tmp_path / "f.ome.zarr"), "plate/f.ome.zarr")
    counting = CountingStore(s3)
    image = open_zarr_in_store(counting, "plate/f.ome.zarr")
    assert image.axes == "TCZYX" and image.ngff_version == "0.4"
    assert image.calibration.pixel_size_um == pytest.approx(0.325)
    assert image.calibration.channel_names == ("cell", "pnp")
    metadata_reads = len(counting.reads)
    chunks = [k for k in counting.reads if k.rsplit("/", 1)[-1][:1].isdigit()]
    assert chunks == [], "no chunk read on opening, only metadata"
    data, _ = read_zarr(image, timepoint=1)
    np.testing.assert_array_equal(data, TCZYX[1].transpose(1, 0, 2, 3))
    counting.reads.clear()
    tile = read_zarr_tile(image, (slice(0, 10), slice(0, 10)), timepoint=0)
    np.testing.assert_array_equal(tile, TCZYX[0, :, :, :10, :10].transpose(1, 0, 2, 3))
    # chunks are (1, 1, 16, 16, 16): the window touches one chunk per channel (Z 3 < 16)
    assert len(counting.reads) == 2, counting.reads
    assert metadata_reads <= 8


def test_an_ngff_05_store_on_s3_reads_with_its_scales(tmp_path, s3) -> None:
    image_zcyx = np.arange(2 * 2 * 32 * 48, dtype="uint16").reshape(2, 2, 32, 48)
    labels = np.zeros((32, 48), "uint32")
    files = ome_zarr_files(
        image_zcyx, labels, name="g", pixel_size_um=0.2, z_step_um=1.0, channel_names=("a", "b")
    )
    for key, data in files.items():
        s3.write_bytes(f"g.ome.zarr/{key}", data)
    image = open_zarr_in_store(s3, "g.ome.zarr/")
    assert (image.axes, image.ngff_version) == ("CZYX", "0.5")
    assert (image.calibration.pixel_size_um, image.calibration.z_step_um) == (0.2, 1.0)
    data, _ = read_zarr(image)
    np.testing.assert_array_equal(data, image_zcyx)


def test_a_prefix_without_an_ome_zarr_and_a_too_large_one_are_refused(tmp_path, s3) -> None:
    s3.write_bytes("empty.zarr/readme.txt", b"nothing here")
    with pytest.raises(InvalidImageError, match=r"empty\.zarr.*not a readable Zarr group"):
        open_zarr_in_store(s3, "empty.zarr")
    _upload(s3, write_ngff(tmp_path / "big.ome.zarr"), "big.ome.zarr")
    with pytest.raises(InvalidImageError, match=r"big\.ome\.zarr"):
        open_zarr_in_store(s3, "big.ome.zarr", limits=ReadLimits(max_pixels=1000))
