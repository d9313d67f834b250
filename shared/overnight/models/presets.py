"""Configurations and recipes for models trained on real data: the DSB2018 nuclei model.

``train_nuclei`` is how ``models/nuclei-dsb2018`` was trained (two stages from random weights).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from overnight.models.card import ModelCard
from overnight.models.config import CellModelConfig, TrainConfig, UNetConfig

logger = logging.getLogger(__name__)


def nuclei_config() -> CellModelConfig:
    """Fluorescence nuclei (DSB2018-like): single channel 2D, small objects, no types.

    Nuclei can be ~10 px across, so the boundary band is 1 px and seeds and objects may be
    small; they can also be ~60 px across, so the U-Net has 4 levels (receptive field ~100 px).
    This is the first stage of :func:`train_nuclei`.
    """
    return CellModelConfig(
        unet=UNetConfig(ndim=2, in_channels=1, out_channels=3, n_levels=4, base_filters=32),
        boundary_px=1,
        cell_types=(),
        pixel_size_um=None,
        min_marker_px=4,
        min_cell_px=12,
        marker_threshold=0.5,
        seed_h_px=0.5,
        seed_smooth_px=1.0,
        min_mean_foreground=0.0,
        class_weights=(1.0, 1.0, 2.0),
        train=TrainConfig(
            epochs=57,
            steps_per_epoch=60,
            batch_size=8,
            patch_yx_px=256,
            val_fraction=0.1,
            val_patches=48,
            patience=12,
            feature_fraction=0.7,
            learning_rate=1e-3,
            time_budget_s=7200.0,  # a safety cap: the epochs end the run
            mixed_precision=True,
        ),
    )


def nuclei_refine_config(first: CellModelConfig) -> CellModelConfig:
    """Stage 2 of :func:`train_nuclei`: ``first`` continued at half its learning rate.

    New patch samples (seed + 1), the same train/validation split.
    """
    train = first.train.model_copy(
        update={
            "epochs": 40,
            "learning_rate": first.train.learning_rate / 2,
            "patience": 10,
            "seed": first.train.seed + 1,
        }
    )
    return first.model_copy(update={"train": train})


def train_nuclei(
    data_dir: Path,
    out_dir: Path,
    config: CellModelConfig | None = None,
    verbose: int = 2,
) -> ModelCard:
    """Train the nuclei model as shipped: two stages, the last one written to ``out_dir``.

    Stage 1 trains ``config`` (default :func:`nuclei_config`) from random weights; stage 2,
    :func:`nuclei_refine_config`, continues from its weights.

    The first stage's run is listed under ``provenance`` in ``out_dir/card.json``.
    """
    from overnight.models.cells_training import train_cells
    from overnight.models.loading import WEIGHTS_FILE

    first = config or nuclei_config()
    with tempfile.TemporaryDirectory(prefix="overnight-nuclei-") as scratch:
        stage1 = Path(scratch) / f"{out_dir.name}-stage1"
        logger.info("nuclei model, stage 1 of 2: %d epochs from random weights", first.train.epochs)
        train_cells(data_dir, stage1, first, verbose=verbose)
        second = nuclei_refine_config(first)
        logger.info("nuclei model, stage 2 of 2: %d epochs from stage 1", second.train.epochs)
        return train_cells(
            data_dir, out_dir, second, verbose=verbose, initial_weights=stage1 / WEIGHTS_FILE
        )
