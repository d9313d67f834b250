"""Synthetic SRS skin series: geometry, layers by depth, drug kinetics, files and truth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from overnight.errors import ConfigError
from overnight.imaging.reader import read_stack
from overnight.synth.skin import (
    DEFAULT_COMPARTMENTS,
    SkinSeries,
    draw_depths_um,
    draw_skin_series,
    draw_times_min,
    write_skin_dataset,
)

SC, VE, HF, DE, AD = range(1, 6)  # labels with the default compartments


@pytest.fixture(scope="module")
def series() -> SkinSeries:
    return draw_skin_series(
        np.random.default_rng(11), size=256, n_depths=6, n_timepoints=8, drug_snr=10.0
    )


def test_shapes_dtypes_and_axes(series: SkinSeries) -> None:
    stack = series.stack(3)
    assert stack.shape == (6, 2, 256, 256) and stack.dtype == np.uint16
    labels = series.labels(3)
    assert labels.shape == (6, 256, 256) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 5}
    assert series.times_min[0] == 0 and np.all(np.diff(series.times_min) > 0)
    assert series.times_min[-1] <= 240
    assert series.depths_um[0] == 0 and 120 <= series.depths_um[-1] <= 150


def test_time_and_depth_ranges_cover_the_model() -> None:
    ends, irregular = [], 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(6, 17))
        times = draw_times_min(rng, n)
        assert len(times) == n and times[0] == 0 and np.all(np.diff(times) >= 1)
        ends.append(times[-1])
        irregular += np.ptp(np.diff(times)) > 2
        depths = draw_depths_um(rng, 12)
        assert depths[0] == 0 and 120 <= depths[-1] <= 150
    assert 120 <= min(ends) and max(ends) <= 240 and max(ends) - min(ends) > 60
    assert irregular == 40
    drawn = draw_skin_series(np.random.default_rng(0), size=48)
    assert 4 <= len(drawn.depths_um) <= 12 and 6 <= drawn.n_timepoints <= 16
    assert 3 <= drawn.drug_snr <= 30


def test_layers_follow_depth(series: SkinSeries) -> None:
    labels = series.labels(0)
    fractions = [np.bincount(plane.ravel(), minlength=6) / plane.size for plane in labels]
    surface, deepest = fractions[0], fractions[-1]
    assert surface[SC] > 0.5 and surface[DE] == surface[AD] == 0
    assert deepest[SC] == deepest[VE] == 0 and deepest[DE] + deepest[AD] > 0.5
    assert fractions[1][VE] > 0.5  # ~28 µm: viable epidermis
    # hair follicles cross every plane
    assert all(f[HF] > 0.02 for f in fractions)
    # adipocytes only deep, more of them deeper down
    assert fractions[0][AD] == fractions[1][AD] == 0
    assert fractions[-1][AD] > fractions[3][AD] > 0


def test_structure_brightness_by_compartment(series: SkinSeries) -> None:
    # adipocytes very bright, dermis darker than epidermis, stratum corneum bright
    labels = series.labels(0)
    image = series.stack(0)[:, 0].astype(float)
    mean = {k: image[labels == k].mean() for k in (SC, VE, DE, AD)}
    assert mean[AD] > 2 * mean[VE]
    assert mean[SC] > mean[VE] > mean[DE]
    assert series.tissue.structure.shape[1] == 256 + 4  # the canvas holds the stage jitter


def test_same_tissue_at_every_timepoint(series: SkinSeries) -> None:
    a, b = series.labels(0), series.labels(5)
    (ya, xa), (yb, xb) = series.shifts_yx[0], series.shifts_yx[5]
    dy, dx = yb - ya, xb - xa
    # b is a seen from (dy, dx) further into the canvas: align the overlap
    ov_a = a[:, max(dy, 0) : 256 + min(dy, 0), max(dx, 0) : 256 + min(dx, 0)]
    ov_b = b[:, max(-dy, 0) : 256 + min(-dy, 0), max(-dx, 0) : 256 + min(-dx, 0)]
    assert np.array_equal(ov_a, ov_b)
    assert max(abs(v) for s in series.shifts_yx for v in s) <= 4


def test_mean_drug_per_compartment_is_the_true_curve(series: SkinSeries) -> None:
    for index in (0, 4, 7):
        drug, labels = series.drug_signal(index), series.labels(index)
        t = series.times_min[index]
        for z, depth in enumerate(series.depths_um):
            for label, name in enumerate(DEFAULT_COMPARTMENTS, start=1):
                pixels = drug[z][labels[z] == label]
                if pixels.size:
                    truth = float(series.true_signal(t, depth, name))
                    assert pixels.mean() == pytest.approx(truth, rel=1e-4, abs=1e-3)
    assert np.all(series.drug_signal(0) == 0)  # t = 0 is pre-dose


def test_follicles_are_the_fast_route(series: SkinSeries) -> None:
    follicle = series.curves["hair_follicle"]
    others = [c for name, c in series.curves.items() if name != "hair_follicle"]
    assert all(follicle.lag_min < c.lag_min and follicle.ka_per_min > c.ka_per_min for c in others)
    assert all(c.ka_per_min > c.ke_per_min and 0 <= c.lag_min <= 20 for c in series.curves.values())
    # deeper planes peak later (the downward wave)
    t = np.linspace(0, 600, 6001)
    peaks = [t[np.argmax(follicle.signal(t, d))] for d in (0.0, 60.0, 120.0)]
    assert peaks[0] < peaks[1] < peaks[2]


def test_drug_noise_and_snr(series: SkinSeries) -> None:
    pre = series.stack(0)[:, 1].astype(float)
    # zero background: offset plus read noise only
    assert pre.mean() == pytest.approx(series.noise.offset_adu, abs=0.2)
    assert pre.std() == pytest.approx(series.noise.read_noise_adu, rel=0.05)
    # SNR at Cmax of the strongest compartment = mean / sqrt(gain·mean + σ²)
    peak = max(c.peak_adu for c in series.curves.values())
    noise_sd = np.sqrt(series.noise.gain * peak + series.noise.read_noise_adu**2)
    assert peak / noise_sd == pytest.approx(10.0)


def test_drug_is_brighter_between_cells(series: SkinSeries) -> None:
    # stratum corneum at the surface: the bright lipid borders of the structure channel take
    # up more drug than the corneocytes they surround
    index = int(np.argmax(series.times_min > 30))
    drug, labels = series.drug_signal(index)[0], series.labels(index)[0]
    structure = series.stack(index)[0, 0].astype(float)
    sc = labels == SC
    border = sc & (structure > np.percentile(structure[sc], 90))
    inside = sc & (structure < np.percentile(structure[sc], 50))
    assert drug[border].mean() > 1.5 * drug[inside].mean()


def test_compartments_are_configurable() -> None:
    s = draw_skin_series(
        np.random.default_rng(2), size=64, n_depths=4, n_timepoints=2,
        compartments=("hair_follicle", "dermis"),
    )  # fmt: skip
    labels = s.labels(1)
    assert set(np.unique(labels)) <= {0, 1, 2}
    assert (labels[0] == 0).mean() > 0.5  # surface: stratum corneum is unlabelled
    with pytest.raises(ConfigError, match="unknown: \\['fat'\\]"):
        draw_skin_series(np.random.default_rng(2), size=64, compartments=("dermis", "fat"))
    with pytest.raises(ConfigError, match="distinct"):
        draw_skin_series(np.random.default_rng(2), size=64, compartments=("dermis", "dermis"))


def test_write_skin_dataset_files_and_truth(tmp_path: Path) -> None:
    start = time.perf_counter()
    paths = write_skin_dataset(tmp_path, seed=3, size=256, n_depths=6, n_timepoints=8)
    elapsed = time.perf_counter() - start
    assert elapsed < 10  # ~1 s on a 2-core CI machine; the budget is 3 s
    assert len(paths) == 8 and paths == sorted(paths)
    first = paths[0]
    assert first.name == "20261125_0900_synth_srs_skin01_t-000min.tif"
    for path in paths:
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert len(sidecar["depths_um"]) == 6 and sidecar["depths_um"][0] == 0
        assert path.name.endswith(f"_t-{int(sidecar['time_min']):03d}min.tif")
        labels = tifffile.imread(tmp_path / "truth" / path.stem / "labels.tif")
        assert labels.shape == (6, 256, 256) and labels.dtype == np.uint8
    stack = read_stack(first)
    assert stack.shape_zcyx == (6, 2, 256, 256) and stack.pixel_size_um == pytest.approx(0.5)
    curves = json.loads((tmp_path / "truth" / "curves.json").read_text())
    assert curves["labels"] == {name: k for k, name in enumerate(DEFAULT_COMPARTMENTS, 1)}
    assert set(curves["curves"]["dermis"]) == {
        "scale_adu", "ka_per_min", "ke_per_min", "lag_min", "speed_um_per_min",
    }  # fmt: skip
    profiles = pd.read_csv(tmp_path / "truth" / "profiles.csv")
    assert list(profiles.columns) == ["time", "depth", "compartment", "signal", "n_px"]
    assert profiles["time"].nunique() == 8 and (profiles["n_px"] > 0).all()
    # same seed, same bytes
    again = write_skin_dataset(tmp_path / "again", seed=3, size=256, n_depths=6, n_timepoints=8)
    assert again[4].read_bytes() == paths[4].read_bytes()
