"""Per-image summaries: counts and the variance/mean ratio of PNPs per cell."""

import math

import numpy as np
import pandas as pd

from overnight.results.summary import count_stats, image_summary


def test_count_stats_by_hand():
    stats = count_stats(np.array([2, 4, 6]))
    assert stats == {"mean": 4.0, "var": 4.0, "vmr": 1.0}


def test_count_stats_undefined_cases_are_nan():
    assert all(math.isnan(v) for v in count_stats(np.array([])).values())
    one = count_stats(np.array([3]))
    assert one["mean"] == 3 and math.isnan(one["var"]) and math.isnan(one["vmr"])
    assert math.isnan(count_stats(np.array([0, 0]))["vmr"])


def test_poisson_counts_have_vmr_near_one_and_clumped_counts_more():
    rng = np.random.default_rng(0)
    assert abs(count_stats(rng.poisson(18, 4000))["vmr"] - 1) < 0.1
    clumped = rng.poisson(rng.lognormal(np.log(18), 0.8, 4000))
    assert count_stats(clumped)["vmr"] > 3


def test_image_summary_per_type():
    cells = pd.DataFrame(
        {
            "cell_id": [1, 2, 3],
            "cell_type": ["lymphocyte", "monocyte", "monocyte"],
            "pnp_count": [5, 10, 20],
        }
    )
    pnps = pd.DataFrame({"cell_id": [1, 0, 2], "multiplicity": [5, 1, 30]})
    row = image_summary(cells, pnps, ("lymphocyte", "monocyte"))
    assert row["n_cells"] == 3 and row["n_pnps"] == 36 and row["n_pnps_on_glass"] == 1
    assert row["n_lymphocyte"] == 1 and row["pnp_per_lymphocyte_mean"] == 5
    assert row["pnp_per_monocyte_mean"] == 15 and row["pnp_per_monocyte_var"] == 50
    assert math.isnan(row["pnp_per_lymphocyte_vmr"])
