"""A file with several scenes or timepoints is several images, with ids that say which."""

import importlib.util
from pathlib import Path

import pytest

from overnight.imaging.files import (
    ImagePart,
    file_parts,
    image_id_for,
    relative_stem_of,
    split_part_id,
    split_part_key,
)
from overnight.imaging.reader import image_parts, part_keys, read_stack
from overnight.jobs.sources import image_id_of, list_source
from overnight.pipeline.image import ImageSource
from overnight.storage import open_store

VENDOR = Path(__file__).parents[1] / "data" / "vendor"
needs_czi = pytest.mark.skipif(
    importlib.util.find_spec("aicspylibczi") is None, reason="needs overnight[formats]"
)


def test_part_keys_and_ids_go_both_ways() -> None:
    parts = file_parts(12, 3)
    assert len(parts) == 36 and parts[0] == ImagePart(0, 0, 12, 3)
    key = "drug rux/plate.czi" + parts[-1].key_suffix()
    assert key == "drug rux/plate.czi#s11t002"
    assert split_part_key(key) == ("drug rux/plate.czi", 11, 2)
    image_id = image_id_for(key)
    assert image_id == "drug~20rux~2Fplate~s11~t002"
    assert split_part_id(image_id) == ("drug~20rux~2Fplate", 11, 2)
    assert relative_stem_of(split_part_id(image_id)[0]) == "drug rux/plate"


def test_names_that_only_look_like_parts_are_files() -> None:
    assert split_part_key("notes#t001") == ("notes#t001", None, None), "not an image name"
    assert split_part_key("a.czi#x") == ("a.czi#x", None, None)
    assert image_id_for("a~t001.tif") == "a~7Et001", "a file's own ~ is encoded"
    assert split_part_id("a~7Et001") == ("a~7Et001", None, None)
    assert len({image_id_for(k) for k in ("a.czi#t001", "a~t001.tif", "a.czi")}) == 3


@needs_czi
def test_a_t_c_z_czi_is_one_image_per_timepoint() -> None:
    path = VENDOR / "CD_s_1_t_3_c_2_z_5.czi"
    assert [p.key_suffix() for p in image_parts(path)] == ["#t000", "#t001", "#t002"]
    assert part_keys("x/CD.czi", path) == ["x/CD.czi#t000", "x/CD.czi#t001", "x/CD.czi#t002"]
    assert part_keys("s.czi", VENDOR / "s_1_t_1_c_1_z_1.czi") == ["s.czi"]
    assert image_parts(VENDOR / "missing.czi") == [ImagePart()], "fails later, with its reason"


@needs_czi
def test_a_source_lists_every_timepoint_and_each_reads_its_own(tmp_path) -> None:
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "CD.czi").write_bytes((VENDOR / "CD_s_1_t_3_c_2_z_5.czi").read_bytes())
    (tmp_path / "one.czi").write_bytes((VENDOR / "s_1_t_1_c_1_z_1.czi").read_bytes())
    store = open_store(str(tmp_path))
    listing = list_source(store)
    keys = [info.key for info in listing.images]
    assert keys == ["one.czi", "run1/CD.czi#t000", "run1/CD.czi#t001", "run1/CD.czi#t002"]
    assert [image_id_of(k) for k in keys] == ["one", *(f"run1~2FCD~t00{t}" for t in range(3))]
    planes = []
    for key in keys[1:]:
        source = ImageSource(key=key, store=store)
        assert source.file_key == "run1/CD.czi"
        scene, timepoint = source.part
        stack = read_stack(tmp_path / source.file_key, scene=scene, timepoint=timepoint)
        assert stack.shape_zcyx == (5, 2, 170, 240)
        planes.append(stack.data)
    assert not (planes[0] == planes[1]).all(), "each part reads its own timepoint"


def test_a_part_travels_in_a_queue_payload_and_is_opened_from_it(tmp_path) -> None:
    from overnight.jobs.payload import ImageJob

    key = "run1/CD.czi#t002"
    job = ImageJob(dataset_id="ds-1", image_id=image_id_of(key), image_key=key, pipeline="p")
    again = ImageJob.model_validate_json(job.model_dump_json())
    assert (again.image_key, again.image_id) == (key, "run1~2FCD~t002")
    source = ImageSource(key=again.image_key, store=open_store(str(tmp_path)), id=again.image_id)
    assert (source.file_key, source.part) == ("run1/CD.czi", (None, 2))
    assert source.image_id == again.image_id
