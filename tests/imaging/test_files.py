from pathlib import Path

import pytest

from overnight.errors import NoImagesError
from overnight.imaging.files import find_images, image_id_from_name, require_images


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
