"""``image.ome.zarr`` written window by window: the whole-field writer's files, byte for byte."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.results.ome_zarr import ome_zarr_files
from overnight.results.ome_zarr_blocks import (
    FolderFiles,
    tiff_window_reader,
    window_side_px,
    write_ome_zarr_by_window,
)

pytest.importorskip("zarr")


@pytest.mark.parametrize(
    ("shape_zcyx", "window_px"),
    [((3, 2, 600, 520), 256), ((1, 1, 1100, 301), 300), ((2, 2, 90, 100), 4096)],
)
def test_windows_write_the_files_the_whole_field_writer_makes(
    tmp_path: Path, shape_zcyx: tuple[int, int, int, int], window_px: int
) -> None:
    """Odd sizes (labels' halved levels one larger than the image's), windows across chunks."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 4000, shape_zcyx).astype(np.uint16)
    labels = rng.integers(0, 4, shape_zcyx[2:]).astype(np.uint32) * 70000
    labels[:40] = 0  # an empty chunk is left out by both writers
    expected = ome_zarr_files(
        image, labels, name="f", pixel_size_um=0.3, z_step_um=None, channel_names=None
    )
    asked: list[tuple[int, int]] = []

    def read_image(ys: slice, xs: slice) -> np.ndarray:
        asked.append((ys.stop - ys.start, xs.stop - xs.start))
        return image[:, :, ys, xs]

    folder = tmp_path / "image.ome.zarr"
    write_ome_zarr_by_window(
        folder,
        read_image,
        lambda ys, xs: labels[ys, xs],
        shape_zcyx,
        image.dtype,
        name="f",
        pixel_size_um=0.3,
        z_step_um=None,
        window_px=window_px,
    )
    written = FolderFiles(folder, "image.ome.zarr")
    assert sorted(written) == sorted(f"image.ome.zarr/{key}" for key in expected)
    for key, data in expected.items():
        assert written[f"image.ome.zarr/{key}"] == data, key
    assert max(max(a) for a in asked) == min(window_side_px(window_px), max(shape_zcyx[2:]))


def test_folder_files_read_each_file_when_asked_and_keep_the_files_beside(tmp_path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c").write_bytes(b"chunk")
    files = FolderFiles(tmp_path / "a", "z.zarr", beside={"labels.tif": b"tif"})
    assert list(files) == ["labels.tif", "z.zarr/b/c"] and len(files) == 2
    (tmp_path / "a" / "b" / "c").write_bytes(b"later")
    assert files["z.zarr/b/c"] == b"later" and files["labels.tif"] == b"tif"


def test_a_tiled_labels_tiff_is_read_by_window() -> None:
    labels = np.arange(300 * 260, dtype=np.uint32).reshape(300, 260)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels, tile=(64, 64), compression="zlib")
    read = tiff_window_reader(buffer.getvalue())
    np.testing.assert_array_equal(read(slice(70, 211), slice(5, 260)), labels[70:211, 5:260])
