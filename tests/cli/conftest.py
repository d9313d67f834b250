"""Small generated datasets for the end-to-end tests of ``overnight run``."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.synth.cytometry import write_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """Six 256² fields from the imaging model, with ground truth under ``truth/``."""
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, n=6, seed=11, size=256)
    return root


@pytest.fixture
def images_copy(small_dataset, tmp_path) -> Path:
    """A private copy of the small dataset's images (tests may add bad files to it)."""
    folder = tmp_path / "images"
    shutil.copytree(small_dataset / "images", folder)
    return folder


@pytest.fixture
def write_bad_images():
    """A function writing one file per kind of bad input into a folder."""
    return _write_bad_images


def _write_bad_images(folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input; returns image_id → words its error must contain."""
    good = np.zeros((5, 2, 32, 32), np.uint16)
    (folder / "zero_bytes.tif").write_bytes(b"")
    tifffile.imwrite(folder / "full.tif", good, metadata={"axes": "ZCYX"})
    data = (folder / "full.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(data[: len(data) // 2])
    (folder / "full.tif").unlink()
    (folder / "not_a_tiff.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    tifffile.imwrite(folder / "float64.tif", good.astype(np.float64), metadata={"axes": "ZCYX"})
    tifffile.imwrite(folder / "int8.tif", good.astype(np.int8), metadata={"axes": "ZCYX"})
    tifffile.imwrite(folder / "one_channel.tif", good[:, :1], metadata={"axes": "ZCYX"})
    bomb = folder / "bomb.tif"
    tifffile.imwrite(bomb, np.zeros((16, 16), np.uint16))
    with tifffile.TiffFile(bomb) as tif:
        offsets = [tif.pages.first.tags[name].offset for name in ("ImageWidth", "ImageLength")]
    with bomb.open("r+b") as fh:
        for offset in offsets:
            fh.seek(offset + 2)
            fh.write(struct.pack("<HII", 4, 1, 200_000))
    return {
        "zero_bytes": "empty",
        "truncated": "",
        "not_a_tiff": "not a TIFF",
        "float64": "float64",
        "int8": "int8",
        "one_channel": "channel",
        "bomb": "",
    }
