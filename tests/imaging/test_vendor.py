"""Vendor files (tests/data/vendor/PROVENANCE.md: made by others, and made here), via read_stack."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overnight.errors import InvalidImageError
from overnight.imaging.limits import ReadLimits
from overnight.imaging.reader import read_stack, read_tile
from overnight.imaging.vendor import read_vendor_info

VENDOR = Path(__file__).parents[1] / "data" / "vendor"


def needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"{module} is not installed: pip install -e '.[formats]' (make test installs it)",
    )


needs_czi = needs("aicspylibczi")
needs_nd2 = needs("nd2")


# --- Zeiss CZI ----------------------------------------------------------------------------


@needs_czi
def test_a_single_plane_czi_reads_with_its_own_calibration() -> None:
    stack = read_stack(VENDOR / "s_1_t_1_c_1_z_1.czi")
    # Sizes as aicspylibczi's own tests state them (SizeY 325, SizeX 475); scaling from the XML.
    assert stack.shape_zcyx == (1, 1, 325, 475)
    assert stack.data.dtype == np.uint16
    assert stack.image_id == "s_1_t_1_c_1_z_1"
    assert stack.pixel_size_um == pytest.approx(1.0833333, rel=1e-6)
    assert stack.z_step_um is None
    assert stack.channel_names == ("Bright",)
    assert stack.metadata["acquired_at"].startswith("2019-06-27T18:33:40")
    assert stack.metadata["file_format"] == "czi"
    assert (stack.metadata["n_scenes"], stack.metadata["n_timepoints"]) == (1, 1)
    assert 3000 < stack.data.mean() < 4500  # a bright-field image, not zeros


@needs_czi
def test_a_mosaic_czi_is_stitched_into_one_zcyx_stack() -> None:
    import aicspylibczi

    stack = read_stack(VENDOR / "tiles_z.czi")
    assert stack.shape_zcyx == (2, 2, 512, 510)  # 2 x 2 tiles of 256 px, 2 px overlap in X
    assert stack.data.dtype == np.uint8
    assert stack.pixel_size_um == pytest.approx(0.83026582, rel=1e-6)
    assert stack.z_step_um == pytest.approx(4.0)
    assert stack.channel_names == ("Ch1", "T PMT")
    czi = aicspylibczi.CziFile(VENDOR / "tiles_z.czi")
    origin = czi.get_mosaic_bounding_box()
    for m in range(4):  # every tile lands where its own bounding box says
        box = czi.get_mosaic_tile_bounding_box(M=m, Z=1, C=0)
        tile = czi.read_image(M=m, Z=1, C=0)[0].reshape(box.h, box.w)
        y, x = box.y - origin.y, box.x - origin.x
        np.testing.assert_array_equal(stack.data[1, 0, y : y + box.h, x : x + box.w], tile)


@needs_czi
def test_a_czi_time_series_is_read_one_timepoint_at_a_time() -> None:
    import aicspylibczi

    name = "CD_s_1_t_3_c_2_z_5.czi"
    with pytest.raises(InvalidImageError, match=r"3 timepoints \(T axis\).*timepoint=0\.\.2"):
        read_stack(VENDOR / name)
    czi = aicspylibczi.CziFile(VENDOR / name)
    whole, dims = czi.read_image()  # the library's own read of every plane, axes BTCZYX
    assert "".join(a for a, _ in dims) == "BTCZYX"
    tzcyx = whole[0].transpose(0, 2, 1, 3, 4)
    for t in range(3):
        stack = read_stack(VENDOR / name, timepoint=t, channels_required=2)
        np.testing.assert_array_equal(stack.data, tzcyx[t])
    assert stack.shape_zcyx == (5, 2, 170, 240)
    assert stack.pixel_size_um == pytest.approx(0.0905767, rel=1e-5)
    assert stack.z_step_um == pytest.approx(0.32)
    assert stack.channel_names == ("LED555", "LED470")
    # each timepoint's own time: its first subblock's AcquisitionTime (the file's
    # AcquisitionDateAndTime, 09:41:02, is when the experiment was set up)
    times = [read_stack(VENDOR / name, timepoint=t).acquisition_fields() for t in range(3)]
    assert [f["acquired_at"] for f in times] == [
        "2016-02-12T09:47:08.279482+00:00",
        "2016-02-12T09:48:08.304915+00:00",
        "2016-02-12T09:49:08.370351+00:00",
    ]
    assert [float(f["elapsed_s"]) for f in times] == pytest.approx([0, 60.025433, 120.090869])
    with pytest.raises(InvalidImageError, match=r"timepoint 3 is out of range 0\.\.2"):
        read_stack(VENDOR / name, timepoint=3)


@needs_czi
def test_a_czi_tile_is_the_window_of_the_stack() -> None:
    stack = read_stack(VENDOR / "tiles_z.czi")
    tile = read_tile(VENDOR / "tiles_z.czi", 100, 300, 50, 90)
    np.testing.assert_array_equal(tile, stack.data[:, :, 100:300, 50:90])


@needs_czi
def test_a_czi_larger_than_the_budget_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidImageError, match=r"tiles_z\.czi.*max_pixels"):
        read_stack(VENDOR / "tiles_z.czi", limits=ReadLimits(max_pixels=100_000))
    with pytest.raises(InvalidImageError, match=r"tiles_z\.czi.*max_in_memory_bytes"):
        read_stack(VENDOR / "tiles_z.czi", limits=ReadLimits(max_in_memory_bytes=100_000))


@needs_czi
def test_a_czi_with_too_few_channels_names_the_roles() -> None:
    with pytest.raises(InvalidImageError, match=r"1 channel; the pipeline needs 2 \(cell, pnp\)"):
        read_stack(
            VENDOR / "s_1_t_1_c_1_z_1.czi", channels_required=2, channel_roles=("cell", "pnp")
        )


@needs_czi
def test_a_scene_that_does_not_exist_is_refused() -> None:
    with pytest.raises(InvalidImageError, match=r"scene 2 is out of range 0\.\.0"):
        read_stack(VENDOR / "s_1_t_1_c_1_z_1.czi", scene=2)


# --- Zeiss CZI: a mosaic with several scenes (tests/data/vendor/make_scene_mosaics_czi.py) --

SCENE_MOSAICS = VENDOR / "scene_mosaics.czi"
#: (Y, X) of each scene's stitched mosaic: 2 x 2 tiles of 16 x 24 px, 1 x 2 tiles of 24 x 20 px.
MOSAIC_SHAPES = [(32, 48), (24, 40)]


def _mosaic_planes(scene: int, timepoint: int) -> np.ndarray:
    """The ZCYX planes make_scene_mosaics_czi.py wrote for one scene and timepoint."""
    y, x = np.mgrid[: MOSAIC_SHAPES[scene][0], : MOSAIC_SHAPES[scene][1]]
    planes = [20000 * scene + 10000 * c + 5000 * timepoint + 100 * y + x for c in range(2)]
    return np.stack(planes)[np.newaxis].astype(np.uint16)


@needs_czi
def test_the_scene_mosaics_file_is_a_mosaic_of_two_scenes() -> None:
    import aicspylibczi

    czi = aicspylibczi.CziFile(SCENE_MOSAICS)
    assert czi.is_mosaic()
    tiles = {layout["S"]: layout["M"] for layout in czi.get_dims_shape()}
    assert tiles == {(0, 1): (0, 4), (1, 2): (0, 2)}, "scene 0: 2 x 2 tiles, scene 1: 1 x 2"


@needs_czi
def test_each_scene_of_a_mosaic_is_stitched_over_its_own_box_with_exact_pixels() -> None:
    for scene in range(2):
        for timepoint in range(2):
            stack = read_stack(SCENE_MOSAICS, scene=scene, timepoint=timepoint, channels_required=2)
            assert stack.shape_zcyx == (1, 2, *MOSAIC_SHAPES[scene])
            np.testing.assert_array_equal(stack.data, _mosaic_planes(scene, timepoint))
            assert stack.channel_names == ("DAPI", "GFP")
            assert stack.pixel_size_um == pytest.approx(0.5)
            assert (stack.metadata["scene"], stack.metadata["n_scenes"]) == (scene, 2)
            assert (stack.metadata["timepoint"], stack.metadata["n_timepoints"]) == (timepoint, 2)


@needs_czi
def test_a_mosaic_with_several_scenes_lists_one_part_per_scene_and_timepoint() -> None:
    from overnight.imaging.reader import image_parts

    parts = [p.key_suffix() for p in image_parts(SCENE_MOSAICS)]
    assert parts == ["#s00t000", "#s00t001", "#s01t000", "#s01t001"]
    assert read_vendor_info(SCENE_MOSAICS).shape_zcyx == (1, 2, 32, 48), "the first scene"
    with pytest.raises(InvalidImageError, match=r"has 2 scenes \(S/P axis\).*scene=0\.\.1"):
        read_stack(SCENE_MOSAICS, timepoint=0)
    with pytest.raises(
        InvalidImageError, match=r"scene_mosaics\.czi.*scene 2 is out of range 0\.\.1"
    ):
        read_stack(SCENE_MOSAICS, scene=2, timepoint=0)


@needs_czi
def test_a_mosaic_scene_beyond_the_budget_is_refused_before_any_plane_is_stitched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aicspylibczi

    stitched: list[dict] = []
    real = aicspylibczi.CziFile.read_mosaic

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stitched.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(aicspylibczi.CziFile, "read_mosaic", counted)
    # scene 0 is 2 x 32 x 48 uint16 = 6144 bytes, scene 1 2 x 24 x 40 = 3840 bytes
    budget = ReadLimits(max_in_memory_bytes=5000)
    with pytest.raises(InvalidImageError, match=r"scene_mosaics\.czi.*max_in_memory_bytes"):
        read_stack(SCENE_MOSAICS, scene=0, timepoint=0, limits=budget)
    assert stitched == [], "refused from the declared size, before decoding"
    stack = read_stack(SCENE_MOSAICS, scene=1, timepoint=1, limits=budget, channels_required=2)
    np.testing.assert_array_equal(stack.data, _mosaic_planes(1, 1))
    assert [call["region"] for call in stitched] == [(300, 100, 40, 24)] * 2, "its own box"
    stitched.clear()
    with pytest.raises(InvalidImageError, match=r"scene_mosaics\.czi.*max_pixels"):
        read_stack(SCENE_MOSAICS, scene=1, timepoint=0, limits=ReadLimits(max_pixels=5_000))
    assert stitched == [], "the whole file (2 scenes x T 2 x C 2 x 24 x 40 px) is too large"


def test_mosaic_scenes_that_overlap_in_the_plane_are_refused() -> None:
    from types import SimpleNamespace

    from overnight.imaging.zeiss import _mosaic_scene_box

    boxes = {0: (10, 20, 48, 32), 1: (50, 40, 40, 24)}  # x, y, w, h: the second starts inside
    stub = SimpleNamespace(
        get_mosaic_scene_bounding_box=lambda index: SimpleNamespace(
            **dict(zip("xywh", boxes[index], strict=True))
        )
    )
    scenes = [{"S": (0, 1)}, {"S": (1, 2)}]
    with pytest.raises(InvalidImageError, match=r"a\.czi.*mosaic scenes 1 and 0 overlap"):
        _mosaic_scene_box(stub, "a.czi", scenes, 1)
    boxes[1] = (58, 20, 40, 24)  # touching, not overlapping
    assert _mosaic_scene_box(stub, "a.czi", scenes, 1) == (58, 20, 40, 24)


@needs_czi
def test_overnight_run_gives_one_result_per_mosaic_scene_and_timepoint(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from overnight.cli.main import cli

    (tmp_path / "in" / "slide").mkdir(parents=True)
    shutil.copy(SCENE_MOSAICS, tmp_path / "in" / "slide" / "scans.czi")
    out = tmp_path / "out"
    command = [str(tmp_path / "in"), "--out", str(out), "--pipeline", "cytometry-classical"]
    result = CliRunner().invoke(cli, ["run", *command, "--workers", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    ids = [f"slide~2Fscans~s0{s}~t00{t}" for s in range(2) for t in range(2)]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ids
    for image_id in ids:
        record = json.loads((out / image_id / "result.json").read_text())
        scene, timepoint = int(image_id[-6]), int(image_id[-1])
        assert record["shape_zcyx"] == [1, 2, *MOSAIC_SHAPES[scene]]
        assert record["acquisition"]["scene"] == str(scene)
        assert record["acquisition"]["timepoint"] == str(timepoint)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["image_id"].tolist() == ids
    assert summary["scene"].tolist() == [0, 0, 1, 1]


# --- Nikon ND2 ----------------------------------------------------------------------------


@needs_nd2
def test_an_nd2_with_timepoints_says_how_many_and_reads_one() -> None:
    with pytest.raises(InvalidImageError, match=r"cluster\.nd2.*3 timepoints.*timepoint=0\.\.2"):
        read_stack(VENDOR / "cluster.nd2")
    stack = read_stack(VENDOR / "cluster.nd2", timepoint=2)
    # Expected values as Bio-Formats reports them in pims' own tests: 3 frames of Z 10, C 2,
    # 31 x 38 px, channel 0 '5-FAM/pH 9.0', pixel size 0.167808983 µm.
    assert stack.shape_zcyx == (10, 2, 31, 38)
    assert stack.data.dtype == np.uint16
    assert stack.image_id == "cluster"
    assert stack.pixel_size_um == pytest.approx(0.167808983, rel=1e-6)
    assert stack.z_step_um == pytest.approx(0.5)
    assert stack.channel_names == ("5-FAM/pH 9.0", "FM 4-64/2% CHAPS")
    assert stack.metadata["timepoint"] == 2 and stack.metadata["n_timepoints"] == 3
    assert stack.metadata["acquired_at"].startswith("2014-06-18")
    assert stack.data.max() > 0


@needs_nd2
def test_the_acquisition_fields_of_an_nd2_timepoint() -> None:
    fields = read_stack(VENDOR / "cluster.nd2", timepoint=2).acquisition_fields()
    assert fields == {  # the timepoint's first frame: its absolute time, and after frame 0
        "acquired_at": "2014-06-18T13:55:45.132195+00:00",
        "elapsed_s": "21.295077",
        "file_format": "nd2",
        "channel_names": "5-FAM/pH 9.0;FM 4-64/2% CHAPS",
        "timepoint": "2",
    }


@needs_nd2
def test_each_nd2_timepoint_is_its_own_frame() -> None:
    import nd2

    everything = nd2.imread(VENDOR / "cluster.nd2")  # T Z C Y X, the library's own full read
    for t in range(3):
        np.testing.assert_array_equal(
            read_stack(VENDOR / "cluster.nd2", timepoint=t).data, everything[t]
        )


@needs_nd2
def test_nd2_info_declares_without_decoding() -> None:
    info = read_vendor_info(VENDOR / "cluster.nd2")
    assert (info.n_scenes, info.n_timepoints, info.shape_zcyx) == (1, 3, (10, 2, 31, 38))


# --- broken files -------------------------------------------------------------------------


@needs_czi
@needs_nd2
@pytest.mark.parametrize("name", ["s_1_t_1_c_1_z_1.czi", "cluster.nd2"])
def test_damaged_vendor_files_are_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    truncated = tmp_path / name
    truncated.write_bytes((VENDOR / name).read_bytes()[:300])
    with pytest.raises(InvalidImageError, match=name.replace(".", r"\.")):
        read_stack(truncated)
    empty = tmp_path / f"empty{Path(name).suffix}"
    empty.touch()
    with pytest.raises(InvalidImageError, match="file is empty"):
        read_stack(empty)
    foreign = tmp_path / f"png{Path(name).suffix}"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    with pytest.raises(InvalidImageError, match=r"png\.(czi|nd2): is not a readable"):
        read_stack(foreign)


def test_a_missing_reader_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_nd2(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "nd2":
            raise ImportError("No module named 'nd2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nd2)
    copy = shutil.copy(VENDOR / "cluster.nd2", tmp_path / "a.nd2")
    with pytest.raises(InvalidImageError, match=r"a\.nd2.*pip install 'overnight\[formats\]'"):
        read_stack(Path(copy))


# --- Leica LIF ----------------------------------------------------------------------------

needs_lif = needs("liffile")
LIF = VENDOR / "LeicaLASX_wavelength-sweep_example.lif"


@needs_lif
def test_a_lif_file_is_one_image_per_scene_and_timepoint_with_its_calibration() -> None:
    from overnight.imaging.reader import image_parts

    parts = [p.key_suffix() for p in image_parts(LIF)]
    assert parts == ["#s00", "#s01", "#s02t000", "#s02t001"], "scenes differ in size and T"
    emission = read_stack(LIF, scene=0)
    assert emission.shape_zcyx == (1, 20, 64, 64) and emission.data.dtype == np.uint8
    assert emission.pixel_size_um == pytest.approx(0.1048, abs=1e-4)
    assert emission.channel_names is not None
    assert (emission.channel_names[0], emission.channel_names[-1]) == ("550 nm", "740 nm")
    stack = read_stack(LIF, scene=2, timepoint=1)
    assert stack.shape_zcyx == (11, 10, 64, 64)
    assert stack.z_step_um == pytest.approx(0.5, abs=1e-3)
    assert stack.acquisition_fields() | {"channel_names": ""} == {
        "acquired_at": "2021-01-29T14:45:00.302000",  # frame 110 of T 2 x 10 bands x Z 11
        "elapsed_s": "80.91",
        "file_format": "lif",
        "channel_names": "",
        "scene": "2",
        "timepoint": "1",
    }
    first = read_stack(LIF, scene=2, timepoint=0)
    assert not np.array_equal(first.data, stack.data), "each timepoint is its own"


@needs_lif
def test_a_lif_file_needs_a_scene_and_checks_sizes_before_decoding() -> None:
    with pytest.raises(InvalidImageError, match=r"3 scenes.*scene=0\.\.2"):
        read_stack(LIF)
    with pytest.raises(InvalidImageError, match=r"scene 3 is out of range 0\.\.2"):
        read_stack(LIF, scene=3)
    with pytest.raises(InvalidImageError, match=r"LeicaLASX.*"):
        read_stack(LIF, scene=2, timepoint=0, limits=ReadLimits(max_in_memory_bytes=10_000))


def test_a_file_that_is_not_a_lif_is_refused_with_its_name(tmp_path) -> None:
    bad = tmp_path / "broken.lif"
    bad.write_bytes(b"not a leica file" * 10)
    with pytest.raises(InvalidImageError, match=r"broken\.lif"):
        read_stack(bad)
