"""Training-data readers: output format, and images/ + masks/ (real DSB2018 nuclei)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from overnight.errors import NoImagesError
from overnight.models.datasets import (
    annotated_images,
    dataset_hash,
    dataset_layout,
    read_dataset,
    split_paths,
)

DSB = Path(__file__).parents[1] / "data" / "dsb"


def test_masks_layout_reads_real_nuclei() -> None:
    assert dataset_layout(DSB) == "masks"
    fields = read_dataset(DSB)
    assert [f.image_id for f in fields] == ["dsb_000_00071198d059", "dsb_002_0280fa8f60f6"]
    assert [len(np.unique(f.labels)) - 1 for f in fields] == [27, 16]  # nuclei per PROVENANCE.md
    for field in fields:
        assert field.image.ndim == 4 and field.image.shape[-2:] == field.labels.shape
        assert field.cells is None and field.pnps is None


def test_output_layout_reads_truth_tables(tiny_dataset: Path) -> None:
    assert dataset_layout(tiny_dataset) == "output"
    field = read_dataset(tiny_dataset)[0]
    assert field.image.shape[1] == 2 and field.pixel_size_um == pytest.approx(0.2)
    assert field.cells is not None and set(np.unique(field.labels)) - {0} == set(
        field.cells["cell_id"]
    )
    assert field.pnps is not None and {"z", "y", "x", "cell_id"} <= set(field.pnps.columns)


def test_a_folder_without_annotations_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(NoImagesError, match="truth/ or masks/"):
        annotated_images(tmp_path)


def test_split_is_fixed_and_disjoint() -> None:
    paths = [Path(f"{i}.tif") for i in range(20)]
    train, val = split_paths(paths, 0.2, seed=3)
    assert (train, val) == split_paths(paths, 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val) and len(train) + len(val) == 20
    assert len(dataset_hash(annotated_images(DSB))) == 64


def test_segment_writes_labels_for_every_image(tiny_cell_model_dir: Path, tmp_path: Path) -> None:
    from overnight.cli.segment import segment

    result = CliRunner().invoke(
        segment,
        [
            str(DSB / "images"),
            "--model",
            str(tiny_cell_model_dir),
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("dsb_000_00071198d059", "dsb_002_0280fa8f60f6"):
        labels = tifffile.imread(tmp_path / name / "labels.tif")
        assert labels.shape == (256, 256) and labels.dtype == np.uint32
