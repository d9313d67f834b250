"""Field statistics on a sample grid fixed in field coordinates (issue 15).

The union of the block cores' samples is the whole field's sample, so a statistic of the
sample is the same whether the field is analysed whole or in blocks; the steps measure the
same numbers themselves when they get none.
"""

from __future__ import annotations

import numpy as np
import pytest

from overnight.pipeline.blocks import plan_blocks
from overnight.steps import cells, pnp
from overnight.steps.field_stats import (
    MAX_SAMPLE_POINTS,
    grid_sample,
    intensity_range,
    otsu_threshold,
    robust_background,
    sample_step,
)


@pytest.mark.parametrize(
    ("shape_yx", "core_px", "halo_px", "step"),
    [((100, 70), 32, 8, 1), ((101, 77), 30, 7, 2), ((257, 129), 64, 13, 3)],
)
def test_the_cores_samples_together_are_the_whole_fields_sample(
    shape_yx: tuple[int, int], core_px: int, halo_px: int, step: int
) -> None:
    """Every grid point once, at its field position, whatever the core and halo sizes."""
    height, width = shape_yx
    ys, xs = np.mgrid[:height, :width]
    position = np.stack([ys * width + xs] * 2)  # 2 planes: a point's field index
    plan = plan_blocks(shape_yx, core_px, halo_px)
    parts = []
    for row in range(plan.n_rows):
        for block in plan.row(row):
            window = position[:, block.read[0], block.read[1]]
            parts.append(grid_sample(window, step, block.offset, block.core_in_read()))
    merged = np.sort(np.concatenate(parts))
    whole = grid_sample(position, step)
    np.testing.assert_array_equal(merged, np.sort(whole))
    np.testing.assert_array_equal(whole, position[:, ::step, ::step].ravel())
    assert len(np.unique(merged)) * 2 == len(merged)  # each point once per plane


def test_the_grid_is_every_pixel_up_to_2048_squared_and_stays_bounded_beyond() -> None:
    assert sample_step((2048, 2048)) == 1
    assert sample_step((512, 512), 2, 12) == 2
    for shape, base, planes in [((12288, 12288), 1, 1), ((4096, 4096), 2, 24), ((99, 5), 2, 3)]:
        step = sample_step(shape, base, planes)
        assert step % base == 0
        assert planes * -(-shape[0] // step) * -(-shape[1] // step) <= MAX_SAMPLE_POINTS
        assert (
            step == base
            or planes * -(-shape[0] // (step - base)) * -(-shape[1] // (step - base))
            > MAX_SAMPLE_POINTS
        )


def test_sample_statistics_do_not_depend_on_the_order_of_the_parts() -> None:
    rng = np.random.default_rng(0)
    sample = rng.gamma(2.0, 10.0, 10_001).astype(np.float32)
    shuffled = np.concatenate([sample[5000:], sample[:5000]])
    for statistic in (
        lambda s: intensity_range(s, 1.0, 99.8),
        otsu_threshold,
        robust_background,
    ):
        assert statistic(sample) == statistic(shuffled)


def test_steps_given_their_own_statistics_give_the_same_result() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(100, 5, (96, 96)).astype(np.float32)
    image[20:50, 30:70] += 60
    own = cells.cell_foreground(image, 2.0, 50)
    threshold = cells.field_threshold(cells.smoothed_projection(image, 2.0))
    np.testing.assert_array_equal(cells.cell_foreground(image, 2.0, 50, threshold), own)
    low, high = np.percentile(image, [1.0, 99.8])
    np.testing.assert_array_equal(
        cells.normalise_intensity(image, 1.0, 99.8, (float(low), float(high))),
        cells.normalise_intensity(image, 1.0, 99.8),
    )
    volume = rng.normal(100, 3, (5, 64, 64)).astype(np.float32)
    volume[2, 30, 30] += 400
    response, smoothed = pnp.spot_response(volume, 1.25, 1.25)
    noise = pnp.estimate_background(response)[1]
    background = pnp.estimate_background(smoothed)[0]
    given = pnp.detect_spots_log(volume, noise_sd=noise, background_adu=background)
    spots = pnp.detect_spots_log(volume)
    assert len(spots) >= 1 and len(given) == len(spots)
    np.testing.assert_array_equal(given.intensity, spots.intensity)
