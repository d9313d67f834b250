"""OME-Zarr (NGFF 0.4) input: a small store written here, read through read_stack / read_tile."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import InvalidImageError
from overnight.imaging.limits import ReadLimits
from overnight.imaging.reader import read_stack, read_tile

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None,
    reason="zarr is not installed: pip install -e '.[formats]' (make test installs it)",
)

TCZYX = (np.arange(2 * 2 * 3 * 40 * 50) % 65521).astype("uint16").reshape(2, 2, 3, 40, 50)


def write_ngff(path: Path, data: np.ndarray = TCZYX, axes: str = "tczyx") -> Path:
    """An NGFF 0.4 image as the spec writes it (Zarr v2, ``.zattrs`` multiscales + omero)."""
    import zarr

    units = {"t": ("time", "second"), "c": ("channel", None)}
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    chunks = tuple(1 if a in "tc" else 16 for a in axes)
    array = root.create_array("0", shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    scale = {"t": 60.0, "c": 1.0, "z": 2.5, "y": 0.325, "x": 0.325}
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": a, "type": units.get(a, ("space", None))[0]}
                | ({"unit": u} if (u := units.get(a, (None, "micrometer"))[1]) else {})
                for a in axes
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [scale[a] for a in axes]}
                    ],
                }
            ],
        }
    ]
    if "c" in axes:
        root.attrs["omero"] = {
            "channels": [{"label": name} for name in ("cell", "pnp")[: data.shape[axes.index("c")]]]
        }
    return path


def test_an_ome_zarr_timepoint_reads_as_zcyx_with_its_scales(tmp_path: Path) -> None:
    store = write_ngff(tmp_path / "field-7.ome.zarr")
    with pytest.raises(InvalidImageError, match=r"field-7\.ome\.zarr.*2 timepoints"):
        read_stack(store)
    stack = read_stack(store, timepoint=1, channels_required=2)
    np.testing.assert_array_equal(stack.data, TCZYX[1].transpose(1, 0, 2, 3))
    assert stack.image_id == "field-7"
    assert stack.pixel_size_um == pytest.approx(0.325)
    assert stack.z_step_um == pytest.approx(2.5)
    assert stack.channel_names == ("cell", "pnp")
    assert stack.metadata["file_format"] == "ome-zarr"
    assert stack.metadata["ngff_version"] == "0.4"


def test_a_yx_only_store_is_one_plane(tmp_path: Path) -> None:
    store = write_ngff(tmp_path / "plane.zarr", TCZYX[0, 0, 0], axes="yx")
    stack = read_stack(store)
    assert stack.shape_zcyx == (1, 1, 40, 50)
    assert stack.z_step_um is None and stack.channel_names is None
    np.testing.assert_array_equal(stack.data[0, 0], TCZYX[0, 0, 0])


def test_a_tile_decodes_only_the_chunks_it_overlaps(tmp_path: Path) -> None:
    store = write_ngff(tmp_path / "big.ome.zarr")
    expected = TCZYX[0, :, :, 16:32, 0:16].transpose(1, 0, 2, 3)
    # Spoil every chunk outside Y/X chunk (1, 0): reading the window must not touch them.
    for chunk in (store / "0").rglob("*"):
        if (
            chunk.is_file()
            and not chunk.name.startswith(".")
            and chunk.name.split(".")[-2:] != ["1", "0"]
        ):
            chunk.write_bytes(b"not a chunk")
    tile = read_tile(store, 16, 32, 0, 16, timepoint=0)
    np.testing.assert_array_equal(tile, expected)
    with pytest.raises(InvalidImageError, match=r"big\.ome\.zarr: Zarr chunks cannot be decoded"):
        read_stack(store, timepoint=0)


def test_a_store_beyond_the_budget_is_refused_before_any_chunk_is_read(tmp_path: Path) -> None:
    store = write_ngff(tmp_path / "a.zarr")
    with pytest.raises(InvalidImageError, match=r"a\.zarr.*max_pixels"):
        read_stack(store, timepoint=0, limits=ReadLimits(max_pixels=1000))
    with pytest.raises(InvalidImageError, match=r"a\.zarr.*max_in_memory_bytes"):
        read_stack(store, timepoint=0, limits=ReadLimits(max_in_memory_bytes=1000))


def test_folders_that_are_not_ome_zarr_images_are_refused(tmp_path: Path) -> None:
    import zarr

    with pytest.raises(InvalidImageError, match="OME-Zarr store not found"):
        read_stack(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2)
    with pytest.raises(InvalidImageError, match="without OME-NGFF 'multiscales'"):
        read_stack(tmp_path / "plain.zarr")
    floats = tmp_path / "floats.zarr"
    write_ngff(floats, TCZYX[0, 0, 0].astype("float32"), axes="yx")
    with pytest.raises(InvalidImageError, match="pixel type float32 is not supported"):
        read_stack(floats)


def test_an_ngff_05_store_reads_too(tmp_path: Path) -> None:
    import zarr

    root = zarr.open_group(str(tmp_path / "v05.ome.zarr"), mode="w", zarr_format=3)
    array = root.create_array("s0", shape=(3, 40, 50), chunks=(1, 16, 16), dtype="uint8")
    array[...] = TCZYX[0, 0].astype("uint8")
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "nanometer"},
                    {"name": "x", "type": "space", "unit": "nanometer"},
                ],
                "datasets": [
                    {
                        "path": "s0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 200, 200]}],
                    }
                ],
            }
        ],
    }
    stack = read_stack(tmp_path / "v05.ome.zarr")
    assert stack.shape_zcyx == (3, 1, 40, 50)
    assert stack.pixel_size_um == pytest.approx(0.2)
    assert stack.metadata["ngff_version"] == "0.5"
    np.testing.assert_array_equal(stack.data[:, 0], TCZYX[0, 0].astype("uint8"))
