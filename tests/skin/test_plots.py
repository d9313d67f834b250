"""The skin-PK figures render as PNG from real profile tables, absent compartments included."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import image as mpimg

from overnight.analysis.profiles import nca_for_profiles
from overnight.skin import plots


def _image(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")


def test_pk_figures_from_the_truth_of_a_series(tiny_series: Path) -> None:
    profiles = pd.read_csv(tiny_series / "truth" / "profiles.csv")
    nca = nca_for_profiles(profiles)
    for png in (
        plots.concentration_time_png(profiles, nca),
        plots.depth_profiles_png(profiles, unit="mM"),
        plots.depth_time_heatmap_png(profiles),
        plots.nca_table_png(nca, auc_method="linear"),
    ):
        image = _image(png)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # something is drawn


def test_heatmap_and_table_cope_with_absent_compartments_and_nan_fields() -> None:
    rows = [
        (t, d, "dermis", float(t * d) if d > 0 else float("nan"), 50 if d > 0 else 0)
        for t in (0.0, 10.0, 45.0)
        for d in (0.0, 30.0)
    ]
    profiles = pd.DataFrame(rows, columns=["time", "depth", "compartment", "signal", "n_px"])
    nca = nca_for_profiles(profiles)
    assert isinstance(nca["reason"].iloc[0], str)  # too few points for lambda_z
    _image(plots.depth_time_heatmap_png(profiles))
    _image(plots.nca_table_png(nca))


def test_overlay_tints_each_compartment_in_its_colour() -> None:
    structure = np.full((5, 64, 80), 1000.0)
    labels = np.zeros((5, 64, 80), np.uint8)
    labels[:, :, 40:] = 3  # hair follicle on the right
    png = plots.overlay_png(
        structure, labels, [0, 10, 20, 30, 40], ["a", "b", "hair_follicle"], "t"
    )
    image = _image(png)
    assert image.shape[1] > image.shape[0]  # 4 columns, 2 rows
    red = (image[..., 0] > 0.6) & (image[..., 1] < 0.5) & (image[..., 2] < 0.5)
    assert red.sum() > 500  # the follicle tint (#d62728 over grey)
