"""Particle model pieces: brightness scale, density target, spots from a density."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage import segmentation

from overnight.models.config import PnpModelConfig
from overnight.models.pnp import (
    _split_basin,
    blob_peak,
    density_basins,
    density_target,
    extract_spots,
    local_maxima,
    pnp_input,
    pnp_scale,
    typical_spot_peak,
)


def test_density_target_integrates_to_the_particle_count() -> None:
    config = PnpModelConfig()
    pnps = pd.DataFrame({"z": [4.0, 4.2, 6.0], "y": [20.0, 20.5, 40.0], "x": [20.0, 20.0, 30.3]})
    density = density_target((10, 64, 64), pnps, config)
    assert abs(density.sum() / config.density_scale - 3.0) < 0.02


def test_spots_are_counted_by_integral_and_pairs_split() -> None:
    config = PnpModelConfig()
    truth = pd.DataFrame(
        {"z": [4.0, 4.1, 5.0, 3.0], "y": [20.0, 20.6, 40.0, 12.0], "x": [20.0, 20.4, 30.3, 50.0]}
    )
    density = density_target((10, 64, 64), truth, config)
    spots = extract_spots(density, density, config)
    assert len(spots) == 4 and (spots.multiplicity == 1).all()
    found = np.column_stack([spots.z, spots.y, spots.x])
    for row in truth[["z", "y", "x"]].to_numpy():
        assert np.min(np.abs(found - row).max(axis=1)) < 1.5


def test_a_split_basin_gives_the_same_spots_in_a_crop_of_the_field() -> None:
    """A field analysed in blocks splits each particle cluster as the whole field does.

    Clusters before the one in the crop must not change where its spots fall: they did when
    one random generator served every basin in turn (seed 15 here moved 4 of 4 spots).
    """
    config = PnpModelConfig()
    rng = np.random.default_rng(15)
    clusters = []  # 2-4 particles around each of four points; the crop holds the last one
    for cy, cx in ((12, 12), (12, 44), (44, 12), (44, 44)):
        n = int(rng.integers(2, 5))
        yx = np.array([cy, cx]) + rng.normal(0, 1.0, (n, 2))
        clusters.append(np.column_stack([rng.uniform(3, 6, n), yx]))
    truth = pd.DataFrame(np.concatenate(clusters), columns=["z", "y", "x"])
    density = density_target((10, 64, 64), truth, config)
    whole = extract_spots(density, density, config)
    crop = extract_spots(density[:, 32:, 32:], density[:, 32:, 32:], config)
    in_crop = (whole.y >= 32) & (whole.x >= 32)
    assert len(crop) == in_crop.sum() >= 3
    np.testing.assert_allclose(np.sort(crop.y + 32), np.sort(whole.y[in_crop]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.sort(crop.x + 32), np.sort(whole.x[in_crop]), rtol=0, atol=1e-9)


def test_faint_noise_gives_no_spots() -> None:
    config = PnpModelConfig()
    density = (
        np.random.default_rng(0).normal(0, 0.05 * blob_peak(config), (6, 32, 32)).astype(np.float32)
    )
    assert len(extract_spots(density, density, config)) == 0


def test_input_is_in_units_of_one_spot() -> None:
    rng = np.random.default_rng(1)
    volume = 100 + rng.normal(0, 5, (8, 96, 96)).astype(np.float32)
    truth = pd.DataFrame(
        {"z": rng.uniform(2, 6, 12), "y": rng.uniform(8, 88, 12), "x": rng.uniform(8, 88, 12)}
    )
    config = PnpModelConfig(density_sigma_xy_px=1.2, density_sigma_z_slices=1.2)
    spots = density_target(volume.shape, truth, config)
    volume += 60 * spots / blob_peak(config)  # peak 60 ADU: SNR 12
    scale = pnp_scale(volume)
    assert abs(scale.background_adu - 100) < 2
    normalised = pnp_input(volume, scale)
    peaks = normalised[
        np.rint(truth.z).astype(int), np.rint(truth.y).astype(int), np.rint(truth.x).astype(int)
    ]
    assert 1.2 < np.median(peaks) < 4.0  # smoothed peak is below the raw one


def test_a_few_particles_among_many_faint_maxima_set_the_scale() -> None:
    rng = np.random.default_rng(2)
    texture = rng.lognormal(np.log(6.0), 0.2, 3000)  # faint autoscatter maxima, ~6 ADU
    particles = rng.lognormal(np.log(36.0), 0.25, 60)  # 2 % of the maxima, ~36 ADU
    assert abs(np.median(np.concatenate([texture, particles])) - 6.0) < 1.0
    assert abs(typical_spot_peak(np.concatenate([texture, particles])) / 36.0 - 1) < 0.15


def test_the_scale_of_an_ordinary_field_is_its_median_peak() -> None:
    values = np.random.default_rng(3).lognormal(np.log(30.0), 0.25, 400)
    values[:40] *= 2  # pairs
    assert typical_spot_peak(values) == float(np.median(values))


@pytest.mark.parametrize("footprint", [(3, 3, 3), (3, 5, 5), (1, 3, 3)])
def test_local_maxima_are_those_of_a_maximum_filter(footprint: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    volume = ndi.gaussian_filter(rng.random((6, 40, 50)), 1.0).astype(np.float32)
    volume[2, 10, 10:12] = 5.0  # a plateau: both voxels are maxima
    candidates = volume > np.percentile(volume, 70)
    expected = np.argwhere((volume == ndi.maximum_filter(volume, size=footprint)) & candidates)
    np.testing.assert_array_equal(local_maxima(volume, candidates, footprint), expected)


def test_basins_are_the_plain_watershed_of_the_density() -> None:
    """Flooding only the mask's parts with several maxima changes no basin."""
    config = PnpModelConfig()
    rng = np.random.default_rng(2)
    points = rng.uniform((0, 0, 0), (8, 96, 96), (120, 3))  # many touching pairs and groups
    truth = pd.DataFrame(points, columns=["z", "y", "x"])
    density = density_target((8, 96, 96), truth, config) * rng.uniform(0.5, 1.5)
    density += rng.normal(0, 0.02 * blob_peak(config), density.shape).astype(np.float32)
    peak = blob_peak(config)
    maxima = (density == ndi.maximum_filter(density, size=(3, 3, 3))) & (
        density > config.peak_threshold * peak
    )
    expected = segmentation.watershed(-density, ndi.label(maxima)[0], mask=density > 0.05 * peak)
    np.testing.assert_array_equal(density_basins(density, config), expected)


def _split_basin_ten_rounds(
    coords: np.ndarray, weights: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """The k-means of ``_split_basin`` as it was: always 10 rounds."""
    order = np.argsort(-weights)
    centres = coords[order[:m]].astype(float) + rng.normal(0, 0.1, (m, 3))
    for _ in range(10):
        nearest = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        for k in range(m):
            w = weights[nearest == k]
            if w.sum() > 0:
                centres[k] = (coords[nearest == k] * w[:, None]).sum(axis=0) / w.sum()
    return centres


def test_split_basin_stops_early_with_the_same_centres() -> None:
    rng = np.random.default_rng(4)
    for m in (2, 3, 4):
        for _ in range(20):
            coords = rng.integers(0, 12, (rng.integers(m, 60), 3))
            weights = rng.random(len(coords))
            seed = int(rng.integers(1 << 30))
            expected = _split_basin_ten_rounds(coords, weights, m, np.random.default_rng(seed))
            got = _split_basin(coords, weights, m, np.random.default_rng(seed))
            np.testing.assert_array_equal(got, expected)


def test_local_maxima_on_integer_plateaus_at_the_edges() -> None:
    rng = np.random.default_rng(8)
    volume = rng.integers(0, 4, (5, 17, 23)).astype(np.float32)  # many ties, maxima on edges
    for footprint in ((3, 5, 5), (3, 3, 3), (1, 3, 3)):
        expected = np.argwhere(
            (volume == ndi.maximum_filter(volume, size=footprint)) & (volume > 0)
        )
        np.testing.assert_array_equal(local_maxima(volume, volume > 0, footprint), expected)


def test_voxel_components_number_parts_as_ndimage_label() -> None:
    from overnight.models.pnp_basins import voxel_components

    rng = np.random.default_rng(9)
    for _ in range(50):
        shape = tuple(int(n) for n in rng.integers(1, 12, 3))
        mask = rng.random(shape) > rng.uniform(0.3, 0.9)
        expected, n = ndi.label(mask)
        labels, got_n = voxel_components(np.flatnonzero(mask), shape)
        assert got_n == n
        np.testing.assert_array_equal(labels, expected.ravel()[np.flatnonzero(mask)])


def _basins_by_whole_volume_labels(density: np.ndarray, config: PnpModelConfig) -> np.ndarray:
    """``density_basins`` as it was: ``ndi.label`` of the whole volume, parts' boxes flooded."""
    peak = blob_peak(config)
    footprint = (3, config.peak_footprint_px, config.peak_footprint_px)
    maxima = np.zeros(density.shape, bool)
    maxima[tuple(local_maxima(density, density > config.peak_threshold * peak, footprint).T)] = True
    markers, n = ndi.label(maxima)
    basins = np.zeros(density.shape, np.int32)
    parts, n_parts = ndi.label(density > 0.05 * peak)
    where = np.nonzero(parts)
    marker_at = markers[where]
    marker_part = np.zeros(n + 1, np.int64)
    marker_part[marker_at[marker_at > 0]] = parts[where][marker_at > 0]
    n_markers = np.bincount(marker_part[1:], minlength=n_parts + 1)
    only_marker = np.zeros(n_parts + 1, np.int64)
    only_marker[marker_part[1:]] = np.arange(1, n + 1)
    single = n_markers[parts[where]] == 1
    basins[tuple(axis[single] for axis in where)] = only_marker[parts[where][single]]
    windows = ndi.find_objects(parts)
    for part in np.flatnonzero(n_markers > 1):
        inside = parts[windows[part - 1]] == part
        basins[windows[part - 1]][inside] = segmentation.watershed(
            -density[windows[part - 1]],
            np.where(inside, markers[windows[part - 1]], 0),
            mask=inside,
        )[inside]
    return basins


def test_basins_on_plateaus_are_those_of_whole_volume_labels() -> None:
    """Flat-topped blobs (ties in the flooding): the sparse parts give the same basins."""
    config = PnpModelConfig()
    rng = np.random.default_rng(12)
    peak = blob_peak(config)
    for seed in range(4):
        points = np.random.default_rng(seed).uniform((0, 0, 0), (6, 60, 60), (80, 3))
        truth = pd.DataFrame(points, columns=["z", "y", "x"])
        density = density_target((6, 60, 60), truth, config) * rng.uniform(0.5, 1.5)
        density = (np.round(density * 4 / peak) * peak / 4).astype(np.float32)
        np.testing.assert_array_equal(
            density_basins(density, config), _basins_by_whole_volume_labels(density, config)
        )
