import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from overnight.errors import NoImagesError
from overnight.imaging.files import (
    MAX_IMAGE_ID_CHARS,
    RESERVED_IDS,
    find_images,
    image_id_for,
    image_id_from_name,
    relative_stem_of,
    require_images,
    scan_folder,
)
from overnight.results.layout import DATASET_FILE, FAILURES_FILE, SUMMARY_FILE
from overnight.storage import validate_id

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adversarial import found_entries, write_adversarial_folder  # noqa: E402


@pytest.mark.parametrize(
    ("name", "image_id"),
    [
        ("field_007.tif", "field_007"),
        ("field_007.TIFF", "field_007"),
        ("a.b.ome.tif", "a.b"),
        ("scan.OME.TIFF", "scan"),
        ("notes.txt", "notes.txt"),
        (
            "20261125_0930_jdoe_df1_S03_dose-10.5uM.ome.tif",
            "20261125_0930_jdoe_df1_S03_dose-10.5uM",
        ),
    ],
)
def test_image_id_drops_the_extension(name: str, image_id: str) -> None:
    assert image_id_from_name(name) == image_id


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    wanted = [
        touch(tmp_path / "b.tif"),
        touch(tmp_path / "A.TIF"),
        touch(tmp_path / "c.ome.tiff"),
        touch(tmp_path / "sub" / "deeper" / "d.Tiff"),
        touch(tmp_path / "truth" / "labels.tif"),
    ]
    touch(tmp_path / ".hidden.tif")
    touch(tmp_path / ".cache" / "e.tif")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "e.tif.json")
    (tmp_path / "folder.tif").mkdir()
    assert find_images(tmp_path) == sorted(wanted)


def test_require_images_on_an_empty_folder(tmp_path: Path) -> None:
    touch(tmp_path / "readme.md")
    with pytest.raises(NoImagesError, match=rf"no TIFF images \(\*\.tif.*found in {tmp_path}"):
        require_images(tmp_path)


def test_require_images_on_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NoImagesError, match="is not a folder"):
        require_images(tmp_path / "nope")


def test_require_images_returns_them(tmp_path: Path) -> None:
    image = touch(tmp_path / "x.tif")
    assert require_images(tmp_path) == [image]


# -- issue 13: an image id unique within the dataset, whatever the layout --------------------


@pytest.mark.parametrize(
    "relative",
    [
        "drug-rux/X.tif",
        "drug-placebo/X.tif",
        "cellule é 1.tif",
        "a b/c~d/e%2F.ome.tif",
        "summary.csv.tif",
        "日本語/画像.tif",
    ],
)
def test_an_encoded_id_is_safe_and_gives_back_its_path(relative: str) -> None:
    image_id = image_id_for(relative)
    assert validate_id(image_id) == image_id
    assert image_id.isascii() and "/" not in image_id and " " not in image_id
    assert quote(image_id, safe="") == image_id  # the same in a URL
    assert relative_stem_of(image_id) == image_id_from_name_path(relative)


def image_id_from_name_path(relative: str) -> str:
    folder, _, name = relative.rpartition("/")
    return f"{folder}/{image_id_from_name(name)}" if folder else image_id_from_name(name)


def test_a_flat_plain_name_keeps_its_id() -> None:
    assert image_id_for("20261125_0930_jdoe_df1_S03_field-007.ome.tif") == (
        "20261125_0930_jdoe_df1_S03_field-007"
    )


def test_the_same_name_in_two_folders_gives_two_ids() -> None:
    ids = {
        image_id_for("drug-rux/X.tif"),
        image_id_for("drug-placebo/X.tif"),
        image_id_for("X.tif"),
    }
    assert len(ids) == 3


@pytest.mark.parametrize("name", sorted(RESERVED_IDS))
def test_no_image_id_is_a_dataset_file(name: str) -> None:
    assert image_id_for(f"{name}.tif") != name
    assert {SUMMARY_FILE, FAILURES_FILE, DATASET_FILE} <= RESERVED_IDS


def test_distinct_paths_never_share_an_id() -> None:
    paths = ["a~b.tif", "a~7Eb.tif", "a/b.tif", "a~2Fb.tif", "a b.tif", "a~20b.tif", "~.tif"]
    ids = [image_id_for(p) for p in paths]
    assert len(set(ids)) == len(ids)
    assert [relative_stem_of(i) for i in ids] == [p.removesuffix(".tif") for p in paths]


def test_a_very_long_path_gets_a_unique_id_within_the_limit() -> None:
    long_a, long_b = "é" * 150 + "/a.tif", "é" * 150 + "/b.tif"
    assert image_id_for(long_a) != image_id_for(long_b)
    assert all(len(image_id_for(p)) <= MAX_IMAGE_ID_CHARS for p in (long_a, long_b))
    validate_id(image_id_for(long_a))


def test_every_image_named_entry_is_analysed_or_ignored_with_a_reason(tmp_path: Path) -> None:
    image = touch(tmp_path / "src" / "good.tif")
    root = tmp_path / "data"
    expected = write_adversarial_folder(root, image, tmp_path / "elsewhere")
    assert found_entries(root) == expected
    scan = scan_folder(root, follow_outside=False)
    images = [p.relative_to(root).as_posix() for p in scan.images]
    ignored = {f.relative: f.reason for f in scan.ignored}
    assert sorted([*images, *ignored]) == expected
    assert "does not exist" in ignored["dangling.tif"]
    assert "a folder" in ignored["folder.tif"]
    assert "outside the dataset folder" in ignored["outside.tif"]
    assert "same image id" in ignored["a.tif"] and "a.ome.tif" in ignored["a.tif"]
    assert "drug-rux/X.tif" in images and "drug-placebo/X.tif" in images
    assert len({image_id_for(i) for i in images}) == len(images)
    # the embedded run follows a link out of the folder the user named
    assert "outside.tif" in [p.name for p in scan_folder(root).images]


def test_vendor_files_are_found_and_named_without_their_extension(tmp_path: Path) -> None:
    from overnight.imaging.files import image_id_from_name, is_image_name

    assert is_image_name("plate_A1.czi") and is_image_name("run.ND2")
    assert not is_image_name("notes.txt")
    assert image_id_from_name("plate_A1.czi") == "plate_A1"
    assert image_id_from_name("run.ND2") == "run"
