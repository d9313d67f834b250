"""Fields larger than the working-set budget are analysed in blocks (issue 13 #3, issue 15).

Invariants on literal label images (every cell kept by exactly one block, seams stitched,
two blocks that disagree about a centroid keep the cell once), the block path against the
whole-field path on a field where both fit, and a compressed mosaic analysed, not refused,
by ``overnight run`` in a child process whose peak RSS stays under the budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage import draw, measure

from overnight.errors import InvalidImageError
from overnight.evaluation.matching import match_labels
from overnight.imaging import read_stack
from overnight.imaging.limits import GIB, ReadLimits
from overnight.imaging.regions import open_regions
from overnight.pipeline.blocks import keep_block_cells, plan_blocks
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.label_band import LabelBand, tiles_of_rows
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.layout import DatasetResults
from overnight.storage import open_store

PIPELINE = "cytometry-classical"
#: Limits that send a 1024² x 2 C field into blocks of 384² cores with 128 px of context.
BLOCK_LIMITS = ReadLimits(max_working_set_bytes=int(1.25 * GIB), max_block_core_px=384)


# ---------------------------------------------------------------- plans and stitching


def test_block_cores_tile_the_field_once_and_reads_hold_their_core() -> None:
    plan = plan_blocks((1000, 700), core_px=384, halo_px=64)
    owned = np.zeros((1000, 700), int)
    for row in range(plan.n_rows):
        for block in plan.row(row):
            owned[block.core] += 1
            (cy, cx), (ry, rx) = block.core, block.read
            assert ry.start <= cy.start and cy.stop <= ry.stop
            assert rx.start <= cx.start and cx.stop <= rx.stop
            assert ry.stop <= 1000 and rx.stop <= 700
    assert (owned == 1).all()


def _disks(shape: tuple[int, int], centres: list[tuple[int, int]], radius: int) -> np.ndarray:
    labels = np.zeros(shape, np.uint32)
    for cell_id, (y, x) in enumerate(centres, start=1):
        rr, cc = draw.disk((y, x), radius, shape=shape)
        labels[rr, cc] = cell_id
    return labels


def _tables(labels: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``cells.csv`` / ``pnps.csv`` rows of ``labels``, one particle at each cell's centre."""
    props = measure.regionprops(labels)
    cells = pd.DataFrame(
        {
            "cell_id": [p.label for p in props],
            "y": [round(p.centroid[0], 2) for p in props],
            "x": [round(p.centroid[1], 2) for p in props],
            "area_px": [int(p.area) for p in props],
            "cell_type": "lymphocyte",
            "pnp_count": 1,
        }
    )
    pnps = pd.DataFrame(
        {
            "z": 0.0,
            "y": cells["y"],
            "x": cells["x"],
            "cell_id": cells["cell_id"],
            "intensity": 100.0,
            "multiplicity": 1,
        }
    )
    return cells, pnps


def _stitch(field_labels: np.ndarray, per_block_labels, core_px: int, halo_px: int):
    """Run the block bookkeeping over ``per_block_labels(block)`` → stitched labels, tables."""
    height, width = field_labels.shape
    plan = plan_blocks((height, width), core_px, halo_px)
    band = LabelBand(height, width, core_px + 2 * halo_px, 16)
    out = np.zeros_like(field_labels)
    cells, pnps, next_id = [], [], 1
    for row in range(plan.n_rows):
        for block in plan.row(row):
            labels = per_block_labels(block)
            block_cells, block_pnps = _tables(labels)
            kept = keep_block_cells(
                block, plan, labels, block_cells, block_pnps, band.window(*block.read), next_id
            )
            next_id += len(kept.cells)
            band.paint(*block.read, kept.labels)
            cells.append(kept.cells)
            pnps.append(kept.pnps)
        final = height if row == plan.n_rows - 1 else (row + 1) * core_px - halo_px
        for first, rows in band.release(final):
            out[first : first + len(rows)] = rows
    return out, pd.concat(cells, ignore_index=True), pd.concat(pnps, ignore_index=True)


def test_cells_on_seams_and_corners_are_kept_once_and_whole() -> None:
    # core 40 px: seams at 40 and 80; cells of radius 6 centred on seams, a corner, inside
    centres = [(40, 20), (20, 40), (40, 40), (80, 60), (60, 80), (10, 10), (100, 100), (79, 81)]
    field = _disks((120, 120), centres, radius=6)
    stitched, cells, pnps = _stitch(field, lambda b: field[b.read], core_px=40, halo_px=16)
    assert len(cells) == len(centres) == len(np.unique(cells["cell_id"]))
    assert len(pnps) == len(centres) and set(pnps["cell_id"]) == set(cells["cell_id"])
    matches = match_labels(field, stitched, min_iou=0.99)
    assert len(matches.true_ids) == len(centres)  # every cell whole, none split or doubled
    assert np.array_equal(stitched > 0, field > 0)
    for row in cells.itertuples():  # table rows in field coordinates, ids as in the labels
        assert stitched[int(round(row.y)), int(round(row.x))] == row.cell_id


@pytest.mark.parametrize("shift", [+1, -1])
def test_a_cell_two_blocks_place_on_either_side_of_a_seam_is_kept_once(shift: int) -> None:
    """Block 0 sees the cell's centre at x = 40 + shift, block 1 at x = 40 - shift."""
    field_shape = (40, 80)

    def seen_by(block):  # each block segments the cell a little differently
        x = 40 + shift if block.index == 0 else 40 - shift
        return _disks(field_shape, [(20, x)], radius=8)[block.read]

    stitched, cells, _ = _stitch(np.zeros(field_shape, np.uint32), seen_by, 40, 16)
    assert len(cells) == 1
    assert len(np.unique(stitched[stitched > 0])) == 1


def test_label_band_releases_whole_tile_rows_and_pads_the_last_tiles() -> None:
    band = LabelBand(height=10, width=5, capacity=6, tile_px=4)
    band.paint(slice(0, 6), slice(0, 5), np.arange(30, dtype=np.uint32).reshape(6, 5))
    released = list(band.release(5))
    assert [(first, rows.shape) for first, rows in released] == [(0, (4, 5))]
    band.paint(slice(4, 10), slice(0, 5), np.ones((6, 5), np.uint32))
    rest = list(band.release(10))
    assert [(first, rows.shape) for first, rows in rest] == [(4, (4, 5)), (8, (2, 5))]
    assert rest[0][1][0, 0] == 20  # painted first, kept: earlier blocks win
    tiles = list(tiles_of_rows(rest[1][1], 4))
    assert [t.shape for t in tiles] == [(4, 4), (4, 4)] and tiles[1][:, 1:].max() == 0
    with pytest.raises(ValueError, match="outside the open band"):
        band.window(slice(0, 2), slice(0, 5))


# ---------------------------------------------------------------- reading by region


def test_regions_read_the_same_pixels_as_the_whole_field(tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 4000, (3, 2, 300, 260), dtype=np.uint16)
    plain, tiled = tmp_path / "plain.tif", tmp_path / "tiled.tif"
    tifffile.imwrite(plain, data, metadata={"axes": "ZCYX"})
    tifffile.imwrite(tiled, data, metadata={"axes": "ZCYX"}, tile=(64, 64), compression="zlib")
    window = (slice(70, 211), slice(5, 260))
    for path in (plain, tiled):
        with open_regions(path) as regions:
            assert regions.shape_zcyx == (3, 2, 300, 260)
            np.testing.assert_array_equal(regions.read(*window), data[:, :, window[0], window[1]])
        assert np.array_equal(read_stack(path).data, data)


def _write_ngff(path: Path, data: np.ndarray, axes: str) -> Path:
    """A minimal NGFF 0.4 image (Zarr v2) holding ``data`` with ``axes`` in 64² chunks."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    chunks = tuple(64 if a in "yx" else 1 for a in axes)
    root.create_array("0", shape=data.shape, chunks=chunks, dtype=data.dtype)[...] = data
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": a} for a in axes], "datasets": [{"path": "0"}]}
    ]
    return path


def test_an_ome_zarr_is_read_by_region_one_timepoint_at_a_time(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    czyx = np.random.default_rng(4).integers(0, 4000, (2, 3, 300, 260), dtype=np.uint16)
    store = _write_ngff(tmp_path / "field.ome.zarr", czyx, "czyx")
    window = (slice(70, 211), slice(5, 260))
    with open_regions(store) as regions:
        assert regions.shape_zcyx == (3, 2, 300, 260)
        expected = czyx.transpose(1, 0, 2, 3)[:, :, window[0], window[1]]
        np.testing.assert_array_equal(regions.read(*window), expected)
    movie = _write_ngff(tmp_path / "movie.ome.zarr", np.stack([czyx, czyx + 1]), "tczyx")
    with pytest.raises(InvalidImageError, match="several timepoints"), open_regions(movie):
        pass
    with open_regions(movie, timepoint=1) as regions:
        assert regions.shape_zcyx == (3, 2, 300, 260)
        np.testing.assert_array_equal(regions.read(*window), expected + 1)


# ---------------------------------------------------------------- whole field vs blocks


def _analyse(image: Path, out: Path, limits: ReadLimits | None = None, pipeline: str = PIPELINE):
    prepared = PreparedPipeline(load_pipeline(pipeline))
    results = DatasetResults(open_store(str(out)))
    result = analyse_image(ImageSource.file(image), prepared, results, limits=limits)
    assert result is not None
    folder = out / result.image_id
    labels = tifffile.imread(folder / "labels.tif")
    return result, labels, pd.read_csv(folder / "cells.csv"), pd.read_csv(folder / "pnps.csv")


def _seam_field(path: Path, size: int = 1024, seams: tuple[int, ...] = (384, 768)) -> np.ndarray:
    """A bright field whose cells sit on the block seams and corners; its true labels.

    Cells of 40-60 px diameter, each with particles; 2 z-slices, uint16 ZCYX.
    """
    rng = np.random.default_rng(7)
    centres = [(s, c) for s in seams for c in range(70, size - 60, 150)]
    centres += [(c + 40, s) for s in seams for c in range(100, size - 60, 170)]
    centres += [(s, t) for s in seams for t in seams]  # on block corners
    centres = [
        (y, x)
        for i, (y, x) in enumerate(centres)
        if all((y - v) ** 2 + (x - u) ** 2 > 75**2 for v, u in centres[:i])
    ]
    truth = np.zeros((size, size), np.uint32)
    image = rng.normal(100, 4, (2, 2, size, size)).astype(np.float32)
    for cell_id, (y, x) in enumerate(centres, start=1):
        radius = int(rng.integers(20, 30))
        rr, cc = draw.disk((y, x), radius, shape=truth.shape)
        truth[rr, cc] = cell_id
        image[:, 0, rr, cc] += 300
        for _ in range(int(rng.integers(3, 9))):  # particles inside the cell
            angle, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, radius - 4)
            py, px = int(y + r * np.sin(angle)), int(x + r * np.cos(angle))
            yy, xx = np.mgrid[-4:5, -4:5]
            spot = 400 * np.exp(-(yy**2 + xx**2) / (2 * 1.2**2))
            image[:, 1, py - 4 : py + 5, px - 4 : px + 5] += spot
    tifffile.imwrite(path, np.clip(image, 0, 65535).astype(np.uint16), metadata={"axes": "ZCYX"})
    return truth


@pytest.mark.parametrize("pipeline", [PIPELINE, pytest.param("cytometry", marks=pytest.mark.slow)])
def test_the_block_path_finds_the_same_cells_and_counts_as_the_whole_field(
    tmp_path: Path, pipeline: str
) -> None:
    """1024² field, blocks of 384² cores: same cells (F1 ≥ 0.99), same counts (≥ 99 %)."""
    image = tmp_path / "in" / "seams.tif"
    image.parent.mkdir()
    truth = _seam_field(image)
    whole, labels, cells, _ = _analyse(image, tmp_path / "whole", pipeline=pipeline)
    blocked, block_labels, block_cells, block_pnps = _analyse(
        image, tmp_path / "blocks", BLOCK_LIMITS, pipeline
    )
    assert "blocks" not in whole.qc and blocked.qc["blocks"]["n"] == 9
    assert block_labels.shape == labels.shape
    # every true cell, half of them on seams, found once: none doubled or split at a seam
    on_truth = match_labels(truth, block_labels, min_iou=0.8)
    assert len(on_truth.true_ids) == truth.max() == len(block_cells)
    matches = match_labels(labels, block_labels)
    f1 = 2 * len(matches.true_ids) / (len(cells) + len(block_cells))
    assert f1 >= 0.99, f1
    count_of = dict(zip(cells["cell_id"], cells["pnp_count"], strict=True))
    block_count_of = dict(zip(block_cells["cell_id"], block_cells["pnp_count"], strict=True))
    same = [
        count_of[a] == block_count_of[b]
        for a, b in zip(matches.true_ids, matches.pred_ids, strict=True)
    ]
    assert np.mean(same) >= 0.99
    # ids are field-wide and agree between labels.tif, cells.csv and pnps.csv
    assert sorted(block_cells["cell_id"]) == sorted(np.unique(block_labels[block_labels > 0]))
    per_cell = block_pnps[block_pnps["cell_id"] > 0].groupby("cell_id")["multiplicity"].sum()
    assert (per_cell == block_cells.set_index("cell_id")["pnp_count"][per_cell.index]).all()
    assert blocked.summary["n_cells"] == whole.summary["n_cells"]


def test_a_stack_whose_smallest_block_exceeds_the_budget_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "deep.tif"
    zeros = np.zeros((512, 512), np.uint16)
    tifffile.imwrite(
        path,
        (zeros for _ in range(40 * 2 * 16)),
        shape=(40, 2, 2048, 2048),
        dtype=np.uint16,
        tile=(512, 512),
        compression="zlib",
        metadata={"axes": "ZCYX"},
    )
    with pytest.raises(InvalidImageError) as caught:
        _analyse(path, tmp_path / "out", ReadLimits.with_working_set_gb(1.15))
    message = str(caught.value)
    for words in ("deep.tif", "2048x2048", "40 z-slice", "OVERNIGHT_MAX_WORKING_SET_GB", "1.1 GiB"):
        assert words in message, message


# ---------------------------------------------------------------- bounded memory, end to end

_PEAK_RSS = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(done.stdout + done.stderr); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _write_mosaic(path: Path, tile: np.ndarray, repeats: int) -> None:
    """A deflate-compressed, 512²-tiled CYX mosaic of ``repeats``² copies of ``tile`` (CYX)."""
    channels, size, _ = tile.shape

    def tiles():
        for c in range(channels):
            for _ in range(repeats):
                for y0 in range(0, size, 512):
                    for _ in range(repeats):
                        for x0 in range(0, size, 512):
                            yield tile[c, y0 : y0 + 512, x0 : x0 + 512]

    tifffile.imwrite(
        path,
        tiles(),
        shape=(channels, size * repeats, size * repeats),
        dtype=np.uint16,
        tile=(512, 512),
        compression="zlib",
        metadata={"axes": "CYX"},
    )


@pytest.mark.slow
def test_a_compressed_mosaic_beyond_the_budget_is_analysed_in_bounded_memory(tmp_path) -> None:
    """Issue 13 #3 at a ninth of the size: a 3072² two-channel mosaic, budget 1.3 GiB.

    Whole, the estimate is 2.4 GiB (the 12288² field's is 22 GiB against 3.5); in blocks the
    child ``overnight run`` must finish with every tile's cells and a peak RSS under the budget
    while it writes both ``labels.tif`` and ``image.ome.zarr`` (window by window, issue 15).
    """
    field = tmp_path / "one.tif"
    _seam_field(field, size=1024, seams=(300, 700))
    tile = tifffile.imread(field)[0]  # CYX
    inputs = tmp_path / "in"
    inputs.mkdir()
    _write_mosaic(inputs / "mosaic.tif", tile, repeats=3)
    assert (inputs / "mosaic.tif").stat().st_size < 40 * 2**20
    overnight = Path(sys.executable).with_name("overnight")
    env = {**os.environ, "OVERNIGHT_MAX_WORKING_SET_GB": "1.3"}
    command = [str(overnight), "run", str(inputs), "--out", str(tmp_path / "out")]
    command += ["--format", "ome-zarr"]  # labels.tif too: one run covers both outputs
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *command, "--pipeline", PIPELINE, "--workers", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    code, peak_kib = (int(v) for v in done.stdout.split()[-2:])
    assert code == 0, done.stderr
    result = json.loads((tmp_path / "out" / "mosaic" / "result.json").read_text())
    assert result["qc"]["blocks"]["n"] > 1 and result["shape_zcyx"] == [1, 2, 3072, 3072]
    labels = tifffile.imread(tmp_path / "out" / "mosaic" / "labels.tif")
    one = _analyse(field, tmp_path / "one")[2]
    assert labels.shape == (3072, 3072) and result["summary"]["n_cells"] == 9 * len(one)
    assert peak_kib * 1024 < 1.3 * GIB, f"peak RSS {peak_kib / 2**20:.2f} GiB"
    zarr_root = tmp_path / "out" / "mosaic" / "image.ome.zarr"
    assert (zarr_root / "labels" / "cells" / "zarr.json").is_file()


def test_an_ome_zarr_field_beyond_the_budget_is_analysed_in_blocks_like_its_tiff(tmp_path) -> None:
    pytest.importorskip("zarr")
    image = tmp_path / "in" / "seams.tif"
    image.parent.mkdir()
    _seam_field(image)
    store = _write_ngff(tmp_path / "in" / "seams.ome.zarr", tifffile.imread(image), "zcyx")
    from_tiff = _analyse(image, tmp_path / "tiff", BLOCK_LIMITS)
    from_zarr = _analyse(store, tmp_path / "zarr", BLOCK_LIMITS)
    assert from_zarr[0].qc["blocks"]["n"] == 9
    assert np.array_equal(from_zarr[1], from_tiff[1])
    pd.testing.assert_frame_equal(from_zarr[2], from_tiff[2])
