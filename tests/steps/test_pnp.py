"""Classical spot detection on volumes with known spots."""

import numpy as np

from overnight.steps.pnp import detect_spots_log, estimate_background, refine_centroids


def gaussian_volume(centres, shape=(8, 40, 40), sigma=(1.2, 1.2, 1.2), amplitude=100.0):
    z, y, x = np.indices(shape, dtype=float)
    vol = np.zeros(shape)
    for cz, cy, cx in centres:
        vol += amplitude * np.exp(
            -(
                (z - cz) ** 2 / (2 * sigma[0] ** 2)
                + (y - cy) ** 2 / (2 * sigma[1] ** 2)
                + (x - cx) ** 2 / (2 * sigma[2] ** 2)
            )
        )
    return vol


def test_finds_isolated_spots_at_subpixel_positions():
    centres = [(3.0, 10.3, 12.6), (4.4, 30.0, 25.2), (5.0, 20.0, 33.0)]
    rng = np.random.default_rng(1)
    vol = gaussian_volume(centres) + 100 + rng.normal(0, 3, (8, 40, 40))
    found = detect_spots_log(vol)
    assert len(found) == 3
    got = sorted(zip(found.z, found.y, found.x, strict=True), key=lambda p: p[1])
    for (ez, ey, ex), (gz, gy, gx) in zip(sorted(centres, key=lambda p: p[1]), got, strict=True):
        assert abs(gy - ey) < 0.5 and abs(gx - ex) < 0.5 and abs(gz - ez) < 0.7


def test_pure_noise_gives_few_false_spots():
    rng = np.random.default_rng(2)
    vol = 100 + rng.normal(0, 5, (8, 64, 64))
    assert len(detect_spots_log(vol, threshold_sd=5.0)) <= 2


def test_background_estimate_is_robust_to_spots():
    rng = np.random.default_rng(3)
    vol = (
        100
        + rng.normal(0, 4, (6, 64, 64))
        + gaussian_volume([(3, 32, 32)], shape=(6, 64, 64), amplitude=500)
    )
    median, sd = estimate_background(vol)
    assert abs(median - 100) < 1 and abs(sd - 4) < 0.5


def test_centroid_of_a_symmetric_peak_is_the_peak():
    vol = gaussian_volume([(4, 20, 20)], shape=(9, 41, 41))
    z, y, x = refine_centroids(vol, np.array([[4, 20, 20]]))
    assert np.allclose([z[0], y[0], x[0]], [4, 20, 20], atol=1e-6)
