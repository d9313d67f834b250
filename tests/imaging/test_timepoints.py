"""A TIFF's T axis is one image per timepoint, with each timepoint's own time."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.errors import InvalidImageError, TransientError
from overnight.imaging.files import ImagePart
from overnight.imaging.limits import ReadLimits
from overnight.imaging.reader import image_parts, part_keys, read_stack
from overnight.imaging.timepoints import declared_timepoints, tiff_parts, timepoint_time
from overnight.jobs.sources import image_id_of, list_source
from overnight.storage import open_store
from overnight.storage.ranged import RangedObject

#: T x Z x C x Y x X, every timepoint different.
TZCYX = np.arange(3 * 2 * 2 * 8 * 9, dtype=np.uint16).reshape(3, 2, 2, 8, 9)
#: OME planes in tifffile's XYCZT order: T-major, 4 planes (Z x C) per timepoint.
DELTA_T_S = [0.0] * 4 + [90.0] * 4 + [180.0] * 4


def _write(path: Path, kind: str, data: np.ndarray = TZCYX) -> Path:
    if kind == "ome":
        metadata = {
            "axes": "TZCYX",
            "AcquisitionDate": "2026-03-01T10:00:00",
            "Plane": {"DeltaT": DELTA_T_S, "DeltaTUnit": ["s"] * 12},
        }
        tifffile.imwrite(path, data, ome=True, metadata=metadata)
    elif kind == "imagej":
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.5})
    elif kind == "shaped":
        tifffile.imwrite(path, data, metadata={"axes": "TZCYX"})
    else:
        tifffile.imwrite(path, data[0, 0])  # a plain multi-page TIFF: a Z stack, no T
    return path


@pytest.mark.parametrize(("kind", "n_t"), [("ome", 3), ("imagej", 3), ("shaped", 3), ("plain", 1)])
def test_the_declared_count_is_the_t_size_tifffile_reads(tmp_path, kind: str, n_t: int) -> None:
    path = _write(tmp_path / f"a.{kind}.tif", kind)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        t_size = series.shape[series.axes.index("T")] if "T" in series.axes else 1
        assert declared_timepoints(tif) == t_size == n_t
    expected = [ImagePart(None, t, 1, 3) for t in range(3)] if n_t == 3 else [ImagePart()]
    assert image_parts(path) == expected


@pytest.mark.parametrize("kind", ["ome", "imagej", "shaped"])
def test_each_timepoint_reads_its_own_planes(tmp_path, kind: str) -> None:
    path = _write(tmp_path / "movie.tif", kind)
    assert part_keys("plate/movie.tif", path) == [f"plate/movie.tif#t00{t}" for t in range(3)]
    assert [image_id_of(k) for k in part_keys("plate/movie.tif", path)] == [
        f"plate~2Fmovie~t00{t}" for t in range(3)
    ]
    for t in range(3):
        stack = read_stack(path, timepoint=t)
        np.testing.assert_array_equal(stack.data, TZCYX[t])
        assert (stack.metadata["timepoint"], stack.metadata["n_timepoints"]) == (t, 3)
        assert stack.acquisition_fields()["timepoint"] == str(t)


def test_an_ome_timepoint_has_its_own_acquisition_time(tmp_path) -> None:
    path = _write(tmp_path / "movie.ome.tif", "ome")
    times = [read_stack(path, timepoint=t).acquisition_fields() for t in range(3)]
    assert [f["acquired_at"] for f in times] == [
        "2026-03-01T10:00:00",
        "2026-03-01T10:01:30",
        "2026-03-01T10:03:00",
    ]
    assert [f["elapsed_s"] for f in times] == ["0.0", "90.0", "180.0"]


def test_an_imagej_timepoint_has_its_offset_but_no_date(tmp_path) -> None:
    path = _write(tmp_path / "movie.tif", "imagej")
    fields = read_stack(path, timepoint=2).acquisition_fields()
    assert fields["elapsed_s"] == "1.0" and "acquired_at" not in fields


def test_ome_delta_t_units_and_a_date_that_is_not_iso(tmp_path) -> None:
    metadata = {
        "axes": "TYX",
        "AcquisitionDate": "1 March 2026",
        "Plane": {"DeltaT": [0.0, 1500.0], "DeltaTUnit": ["ms", "ms"]},
    }
    tifffile.imwrite(tmp_path / "a.ome.tif", TZCYX[:2, 0, 0], ome=True, metadata=metadata)
    with tifffile.TiffFile(tmp_path / "a.ome.tif") as tif:
        when = timepoint_time(tif, 1)
    assert when.elapsed_s == pytest.approx(1.5)
    assert when.acquired_at == "1 March 2026", "kept as written, not guessed"


def test_a_file_that_is_not_a_tiff_or_is_missing_is_one_image(tmp_path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"\x89PNG not a tiff")
    assert tiff_parts(tmp_path / "bad.tif") == [ImagePart()]
    assert image_parts(tmp_path / "missing.tif") == [ImagePart()]


def test_a_folder_source_lists_every_timepoint(tmp_path) -> None:
    (tmp_path / "run1").mkdir()
    _write(tmp_path / "run1" / "movie.ome.tif", "ome")
    _write(tmp_path / "still.tif", "plain")
    keys = [info.key for info in list_source(open_store(str(tmp_path))).images]
    assert keys == [f"run1/movie.ome.tif#t00{t}" for t in range(3)] + ["still.tif"]


def test_a_header_read_by_range_touches_a_small_part_of_the_file() -> None:
    big = np.zeros((4, 1, 1, 512, 512), np.uint16)  # 2 MiB of pixels
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, big, ome=True, metadata={"axes": "TZCYX"})
    body = buffer.getvalue()
    fetched: list[int] = []

    def read_range(offset: int, length: int) -> bytes:
        fetched.append(length)
        return body[offset : offset + length]

    raw = RangedObject(read_range, len(body))
    with io.BufferedReader(raw, buffer_size=64 * 1024) as stream:
        assert [p.timepoint for p in tiff_parts(stream)] == [0, 1, 2, 3]
    assert sum(fetched) < 256 * 1024 < len(body), (sum(fetched), len(body))


def test_a_compressed_movie_decodes_only_the_timepoint_read(tmp_path) -> None:
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, TZCYX, ome=True, compression="zlib", metadata={"axes": "TZCYX"})
    one_timepoint = TZCYX[0].nbytes
    limits = ReadLimits(max_in_memory_bytes=2 * one_timepoint)  # the whole movie is 3
    for t in range(3):
        np.testing.assert_array_equal(read_stack(path, timepoint=t, limits=limits).data, TZCYX[t])
    with pytest.raises(InvalidImageError, match="max_in_memory_bytes"):
        read_stack(path, timepoint=0, limits=ReadLimits(max_in_memory_bytes=one_timepoint // 2))


def test_a_compressed_file_with_t_inside_is_decoded_whole_and_right(tmp_path) -> None:
    ztcyx = TZCYX.transpose(1, 0, 2, 3, 4)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, ztcyx, compression="zlib", metadata={"axes": "ZTCYX"})
    assert image_parts(path) == [ImagePart(None, t, 1, 3) for t in range(3)]
    for t in range(3):
        np.testing.assert_array_equal(read_stack(path, timepoint=t).data, TZCYX[t])


def test_a_store_that_fails_fails_the_listing_instead_of_miscounting() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, TZCYX, ome=True, metadata={"axes": "TZCYX"})

    def unreachable(offset: int, length: int) -> bytes:
        raise TransientError("s3 timed out")

    raw = RangedObject(unreachable, len(buffer.getvalue()))
    with io.BufferedReader(raw) as stream, pytest.raises(TransientError, match="timed out"):
        tiff_parts(stream)
