"""Named starting configurations for models trained on other data than the synthetic fields."""

from __future__ import annotations

from overnight.models.config import CellModelConfig, TrainConfig


def nuclei_config() -> CellModelConfig:
    """Fluorescence nuclei (DSB2018-like): single channel 2D, small objects, no types.

    Nuclei can be ~10 px across, so the boundary band is 1 px and seeds and objects may be small.
    """
    return CellModelConfig(
        boundary_px=1,
        cell_types=(),
        pixel_size_um=None,
        min_marker_px=4,
        min_cell_px=12,
        marker_threshold=0.5,
        seed_h_px=0.5,
        class_weights=(1.0, 1.0, 2.0),
        train=TrainConfig(
            epochs=40,
            steps_per_epoch=60,
            batch_size=8,
            patch_yx_px=256,
            val_fraction=0.1,
            val_patches=48,
            patience=6,
            feature_fraction=0.7,
            learning_rate=2e-3,
            time_budget_s=720.0,
        ),
    )
