import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.errors import InvalidImageError
from overnight.imaging.header import read_info
from overnight.imaging.limits import ReadLimits
from overnight.imaging.reader import read_stack, read_tile


def labelled(shape: tuple[int, ...], dtype: str = "uint16") -> np.ndarray:
    """Array whose elements are distinct (mod dtype range), so a wrong transpose cannot pass."""
    return (np.arange(np.prod(shape)) % np.iinfo(dtype).max).astype(dtype).reshape(shape)


ZCYX = labelled((3, 2, 16, 20))


def write(path: Path, data: np.ndarray, **kwargs) -> Path:
    if data.ndim > 2 and data.shape[-1] not in (3, 4):
        kwargs.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, data, **kwargs)
    return path


def patch_tag(path: Path, tag_name: str, value: int) -> None:
    """Rewrite a tag of the first IFD as one LONG, in place (classic little-endian TIFF)."""
    with tifffile.TiffFile(path) as tif:
        entry_offset = tif.pages.first.tags[tag_name].offset
    with path.open("r+b") as fh:
        fh.seek(entry_offset + 2)
        fh.write(struct.pack("<HII", 4, 1, value))


# --- axes and calibration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "kwargs", "expected"),
    [
        ("zcyx.tif", ZCYX, {"metadata": {"axes": "ZCYX"}}, ZCYX),
        ("czyx.tif", ZCYX.transpose(1, 0, 2, 3), {"metadata": {"axes": "CZYX"}}, ZCYX),
        ("yx.tif", ZCYX[0, 0], {}, ZCYX[:1, :1]),
        ("cyx.tif", ZCYX[0], {"metadata": {"axes": "CYX"}}, ZCYX[:1]),
        ("zyx.tif", ZCYX[:, 0], {"metadata": {"axes": "ZYX"}}, ZCYX[:, :1]),
        ("tzcyx.ome.tif", ZCYX[np.newaxis], {"metadata": {"axes": "TZCYX"}}, ZCYX),
        ("plain.tif", ZCYX[:, 0], {"metadata": None}, ZCYX[:, :1]),
        (
            "rgb.tif",
            labelled((16, 20, 3), "uint8"),
            {},
            labelled((16, 20, 3), "uint8").transpose(2, 0, 1)[np.newaxis],
        ),
        ("zlib.tif", ZCYX, {"metadata": {"axes": "ZCYX"}, "compression": "zlib"}, ZCYX),
        ("tiled.tif", ZCYX, {"metadata": {"axes": "ZCYX"}, "tile": (16, 16)}, ZCYX),
        ("bigendian.tif", ZCYX, {"metadata": {"axes": "ZCYX"}, "byteorder": ">"}, ZCYX),
        ("ij.tif", ZCYX, {"imagej": True, "metadata": {"axes": "ZCYX"}}, ZCYX),
        (
            "u32.tif",
            ZCYX.astype(np.uint32) * 70000,
            {"metadata": {"axes": "ZCYX"}},
            ZCYX.astype(np.uint32) * 70000,
        ),
    ],
)
def test_files_read_as_zcyx(
    tmp_path: Path, name: str, data: np.ndarray, kwargs: dict, expected: np.ndarray
) -> None:
    stack = read_stack(write(tmp_path / name, data, **kwargs))
    assert stack.data.shape == expected.shape
    assert stack.data.dtype == expected.dtype
    assert stack.data.dtype.isnative
    np.testing.assert_array_equal(stack.data, expected)
    assert stack.source == str(tmp_path / name)
    assert stack.image_id == name.split(".")[0]


def test_ome_calibration_and_channel_names(tmp_path: Path) -> None:
    path = write(
        tmp_path / "field.ome.tif",
        ZCYX.transpose(1, 0, 2, 3),
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 200,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeZ": 0.5,
            "Channel": {"Name": ["cell", "pnp"]},
        },
    )
    stack = read_stack(path, image_id="custom")
    np.testing.assert_array_equal(stack.data, ZCYX)
    assert stack.image_id == "custom"
    assert stack.pixel_size_um == pytest.approx(0.2)
    assert stack.z_step_um == pytest.approx(0.5)
    assert stack.channel_names == ("cell", "pnp")
    assert stack.metadata == {"file_axes": "CZYX", "file_shape": [2, 3, 16, 20]}


def test_imagej_hyperstack_spacing_and_resolution(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ij.tif",
        ZCYX,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um"},
    )
    stack = read_stack(path)
    assert stack.shape_zcyx == (3, 2, 16, 20)
    assert stack.pixel_size_um == pytest.approx(0.25)
    assert stack.z_step_um == pytest.approx(1.5)
    assert stack.channel_names is None


def test_resolution_tag_in_centimetres(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cm.tif",
        ZCYX[0, 0],
        resolution=(1e4 / 0.3, 1e4 / 0.3),
        resolutionunit="CENTIMETER",
    )
    assert read_stack(path).pixel_size_um == pytest.approx(0.3)


def test_no_calibration_is_none(tmp_path: Path) -> None:
    stack = read_stack(write(tmp_path / "bare.tif", ZCYX, metadata={"axes": "ZCYX"}))
    assert (stack.pixel_size_um, stack.z_step_um, stack.channel_names) == (None, None, None)


def test_axes_override_for_files_without_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "two_pages.tif", ZCYX[0], metadata=None)
    assert read_stack(path).shape_zcyx == (2, 1, 16, 20)
    stack = read_stack(path, axes="CYX", channels_required=2)
    np.testing.assert_array_equal(stack.data, ZCYX[:1])


def test_timepoints(tmp_path: Path) -> None:
    tczyx = labelled((3, 2, 2, 8, 9))
    path = write(tmp_path / "t.ome.tif", tczyx, metadata={"axes": "TCZYX"})
    with pytest.raises(InvalidImageError, match="3 timepoints"):
        read_stack(path)
    stack = read_stack(path, timepoint=1)
    np.testing.assert_array_equal(stack.data, tczyx[1].transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(
        read_tile(path, 2, 5, 0, 9, timepoint=2), tczyx[2].transpose(1, 0, 2, 3)[:, :, 2:5]
    )


# --- memory mapping and tiles ---------------------------------------------------------------


def test_uncompressed_files_are_memory_mapped_read_only(tmp_path: Path) -> None:
    path = write(tmp_path / "mm.tif", ZCYX.transpose(1, 0, 2, 3), metadata={"axes": "CZYX"})
    stack = read_stack(path)
    assert isinstance(stack.data, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        stack.data[0, 0, 0, 0] = 1
    assert not isinstance(read_stack(path, memmap=False).data, np.memmap)
    assert read_info(path).memmappable


def test_compressed_files_are_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "z.tif", ZCYX, metadata={"axes": "ZCYX"}, compression="zlib")
    assert not isinstance(read_stack(path).data, np.memmap)
    assert not read_info(path).memmappable


def test_read_info_reads_no_pixels(tmp_path: Path) -> None:
    path = write(tmp_path / "info.tif", ZCYX.transpose(1, 0, 2, 3), metadata={"axes": "CZYX"})
    info = read_info(path)
    assert (info.file_axes, info.file_shape, info.shape_zcyx) == (
        "CZYX",
        (2, 3, 16, 20),
        (3, 2, 16, 20),
    )
    assert info.dtype == np.uint16


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"compression": "zlib"}, {"tile": (16, 16)}, {"byteorder": ">"}],
    ids=["memmap", "zlib", "tiled", "big-endian"],
)
def test_read_tile_matches_the_full_stack(tmp_path: Path, kwargs: dict) -> None:
    data = labelled((2, 3, 40, 50)).transpose(1, 0, 2, 3)  # written as CZYX
    path = write(
        tmp_path / "t.tif", np.ascontiguousarray(data), metadata={"axes": "CZYX"}, **kwargs
    )
    full = read_stack(path).data
    tile = read_tile(path, 5, 37, 10, 49)
    assert tile.shape == (2, 3, 32, 39)
    assert not isinstance(tile, np.memmap)
    np.testing.assert_array_equal(tile, full[:, :, 5:37, 10:49])


def test_read_tile_decodes_one_page_at_a_time(tmp_path: Path) -> None:
    data = labelled((4, 2, 64, 64))  # 64 KiB in all, 8 KiB per page
    path = write(tmp_path / "z.tif", data, metadata={"axes": "ZCYX"}, compression="zlib")
    limits = ReadLimits(max_in_memory_bytes=16 * 1024)
    with pytest.raises(InvalidImageError, match="max_in_memory_bytes"):
        read_stack(path, limits=limits)
    np.testing.assert_array_equal(
        read_tile(path, 0, 32, 32, 64, limits=limits), data[:, :, :32, 32:]
    )


@pytest.mark.parametrize("window", [(0, 0, 0, 5), (5, 3, 0, 5), (0, 17, 0, 5), (-1, 4, 0, 5)])
def test_read_tile_outside_the_image(tmp_path: Path, window: tuple[int, int, int, int]) -> None:
    path = write(tmp_path / "small.tif", ZCYX, metadata={"axes": "ZCYX"})
    with pytest.raises(ValueError, match=r"small\.tif.*outside the image \(16x20 px\)"):
        read_tile(path, *window)


def test_a_2gib_stack_reads_memory_mapped(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"  # sparse file: written instantly, no disk used
    tifffile.imwrite(path, shape=(16, 2, 8192, 4096), dtype=np.uint16, metadata={"axes": "ZCYX"})
    stack = read_stack(path, channels_required=2)
    assert stack.data.nbytes == 2**31
    assert isinstance(stack.data, np.memmap)
    assert read_tile(path, 8000, 8192, 4000, 4096).shape == (16, 2, 192, 96)


# --- bad input ------------------------------------------------------------------------------


def assert_refused(path: Path, problem: str, **kwargs) -> InvalidImageError:
    with pytest.raises(InvalidImageError) as caught:
        read_stack(path, **kwargs)
    error = caught.value
    assert error.source == str(path)
    assert path.name in str(error)
    assert problem in error.problem, error.problem
    assert isinstance(error.__cause__, (Exception, type(None)))
    return error


def test_missing_file(tmp_path: Path) -> None:
    assert_refused(tmp_path / "gone.tif", "file not found")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    assert_refused(path, "file is empty (0 bytes)")


def test_png_named_tif(tmp_path: Path) -> None:
    path = tmp_path / "photo.tif"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert_refused(path, "is not a TIFF file; it is a PNG image")


def test_text_named_tif(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("exposure 100 ms, gain 2\n" * 10)
    assert_refused(path, "is not a TIFF file (first bytes b'exposure'")


def test_damaged_tiff_header(tmp_path: Path) -> None:
    path = tmp_path / "damaged.tif"
    path.write_bytes(b"II*\x00" + struct.pack("<I", 10**9) + bytes(64))
    assert_refused(path, "is a damaged TIFF")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_file(tmp_path: Path, compression: str | None) -> None:
    path = write(tmp_path / "cut.tif", labelled((4, 64, 64)), compression=compression)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    error = assert_refused(path, "file is truncated")
    assert "interrupted copy" in error.problem


def test_corrupt_compressed_data(tmp_path: Path) -> None:
    path = write(tmp_path / "garbled.tif", labelled((64, 64)), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.dataoffsets[0]
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 32)
    assert_refused(path, "pixel data cannot be decoded")
    with pytest.raises(InvalidImageError, match="cannot be decoded"):
        read_tile(path, 0, 8, 0, 8)


@pytest.mark.parametrize("dtype", ["float64", "int8", "float32", "int16"])
def test_wrong_dtype(tmp_path: Path, dtype: str) -> None:
    path = write(tmp_path / "processed.tif", np.zeros((8, 8), dtype))
    error = assert_refused(path, f"pixel type {dtype} is not supported")
    assert error.problem.endswith("expected unsigned integers (uint8/uint16/uint32)")


def test_single_channel_when_two_are_needed(tmp_path: Path) -> None:
    path = write(tmp_path / "mono.tif", ZCYX[:, 0], metadata={"axes": "ZYX"})
    error = assert_refused(
        path,
        "has 1 channel; the pipeline needs 2 (cell, pnp) — check the channel settings",
        channels_required=2,
        channel_roles=("cell", "pnp"),
    )
    assert "'ZYX'" in error.problem
    assert read_stack(path, channels_required=1).shape_zcyx == (3, 1, 16, 20)


def make_bomb(path: Path, height: int, width: int, compression: str | None) -> Path:
    """A tiny TIFF whose first IFD declares height x width uint16 in one strip."""
    write(path, np.zeros((16, 16), np.uint16), compression=compression, rowsperstrip=16)
    patch_tag(path, "ImageWidth", width)
    patch_tag(path, "ImageLength", height)
    patch_tag(path, "RowsPerStrip", height)
    return path


@pytest.mark.parametrize(
    ("height", "compression", "problem"),
    [
        (100_000, "zlib", "compressed tile declares shape (100000, 100000) uint16 = 18.6 GiB"),
        (100_000, None, "pixel data ends at byte 20000000256 but the file has only"),
        (4_000_000, None, "ReadLimits.max_pixels"),
    ],
    ids=["compressed-20GB", "uncompressed-20GB", "4e6x1e5-pixels"],
)
def test_decompression_bomb_is_refused_before_allocating(
    tmp_path: Path, height: int, compression: str | None, problem: str
) -> None:
    path = make_bomb(tmp_path / "bomb.tif", height, 100_000, compression)
    assert path.stat().st_size < 1000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        for read in (read_stack, read_info):
            with pytest.raises(InvalidImageError) as caught:
                read(path)
            assert problem in caught.value.problem
            assert "bomb.tif" in str(caught.value)
        with pytest.raises(InvalidImageError):
            read_tile(path, 0, 16, 0, 16)
        elapsed_s = time.perf_counter() - started
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed_s < 1.0
    assert peak_bytes < 10 * 2**20


def test_strips_shorter_than_the_image(tmp_path: Path) -> None:
    path = write(tmp_path / "short.tif", np.ones((32, 32), np.uint16), rowsperstrip=8)
    with tifffile.TiffFile(path) as tif:
        counts = tif.pages.first.tags["StripByteCounts"]
        fmt = {3: "<H", 4: "<I"}[int(counts.dtype)]
    with path.open("r+b") as fh:
        fh.seek(counts.valueoffset + 3 * struct.calcsize(fmt))
        fh.write(struct.pack(fmt, 10))  # last strip: 10 bytes instead of 512
    assert_refused(path, "declares 2048 bytes of pixels but its strips hold 1546")


def test_too_few_channels_without_roles(tmp_path: Path) -> None:
    path = write(tmp_path / "two.tif", ZCYX, metadata={"axes": "ZCYX"})
    assert_refused(path, "has 2 channels; the pipeline needs 3 — check", channels_required=3)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"compression": "zlib"}, {"tile": (16, 16)}, {"imagej": True}],
    ids=["plain", "zlib", "tiled", "imagej"],
)
def test_corrupted_bytes_never_escape_as_raw_errors(tmp_path: Path, kwargs: dict) -> None:
    """Flip a few header/data bytes: reading either works or raises InvalidImageError."""
    original = write(
        tmp_path / "good.tif", labelled((2, 2, 32, 32)), metadata={"axes": "ZCYX"}, **kwargs
    ).read_bytes()
    rng = np.random.default_rng(7)
    path = tmp_path / "fuzzed.tif"
    outcomes = {"read": 0, "refused": 0}
    for _ in range(150):
        corrupted = bytearray(original)
        for _ in range(rng.integers(1, 5)):
            corrupted[rng.integers(0, min(len(corrupted), 600))] = rng.integers(0, 256)
        path.write_bytes(bytes(corrupted))
        try:
            stack = read_stack(path, memmap=bool(rng.integers(0, 2)))
            np.asarray(stack.data).sum()
            height, width = stack.shape_zcyx[2:]
            read_tile(path, 0, min(8, height), 0, min(8, width))
            outcomes["read"] += 1
        except InvalidImageError as error:
            assert error.source == str(path)
            outcomes["refused"] += 1
    assert outcomes["read"] > 0 and outcomes["refused"] > 0


def test_zero_width_image(tmp_path: Path) -> None:
    path = write(tmp_path / "flat.tif", np.ones((4, 4), np.uint16))
    patch_tag(path, "ImageWidth", 0)
    assert_refused(path, "TIFF structure cannot be parsed (integer division or modulo by zero)")


def test_a_truncated_multi_page_file_says_truncated_not_channels(tmp_path, caplog) -> None:
    """Issue 13: a cut copy read as 'has 1 channel … check the channel settings'."""
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((2, 64, 64), np.uint16), metadata={"axes": "CYX"})
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2 + 100])
    caplog.set_level("DEBUG")
    with pytest.raises(InvalidImageError, match="truncated.*interrupted copy") as err:
        read_stack(cut, channels_required=2)
    assert "channel" not in str(err.value)
    # tifffile's ERROR line reaches no handler (the terminal); it is kept at DEBUG as ours
    assert not [r for r in caplog.records if r.name == "tifffile"]
    assert any(
        r.name == "overnight.imaging.header"
        and r.levelname == "DEBUG"
        and "invalid page" in r.message
        for r in caplog.records
    )
