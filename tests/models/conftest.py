"""Fixtures of the model tests: a tiny synthetic dataset in the output format, tiny configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from overnight.models.config import CellModelConfig, PnpModelConfig, TrainConfig, UNetConfig

TINY_TRAIN = TrainConfig(
    epochs=1,
    steps_per_epoch=2,
    batch_size=2,
    patch_yx_px=64,
    val_patches=2,
    patience=1,
    time_budget_s=60,
)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 160² synthetic fields with truth (images/ + truth/)."""
    from overnight.synth.cytometry import write_dataset

    root = tmp_path_factory.mktemp("tiny-synth")
    write_dataset(root, 3, seed=5, size=160)
    return root


@pytest.fixture(scope="session")
def tiny_cell_config() -> CellModelConfig:
    """A cell model small enough to train two steps in a second."""
    return CellModelConfig(
        unet=UNetConfig(ndim=2, in_channels=1, out_channels=3, n_levels=2, base_filters=4),
        train=TINY_TRAIN,
        tile_px=96,
        tile_overlap_px=32,
    )


@pytest.fixture(scope="session")
def tiny_pnp_config() -> PnpModelConfig:
    """A particle model small enough to train two steps in a second."""
    return PnpModelConfig(
        unet=UNetConfig(
            ndim=3,
            in_channels=1,
            out_channels=1,
            n_levels=2,
            base_filters=2,
            head_activation="linear",
        ),
        train=TINY_TRAIN.model_copy(update={"patch_z_slices": 4, "patch_yx_px": 32}),
        tile_px=96,
        tile_overlap_px=32,
    )


@pytest.fixture(scope="session")
def tiny_cell_model_dir(
    tiny_dataset: Path, tiny_cell_config: CellModelConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A cell model trained two steps on the tiny dataset (weights, config, classifier, card)."""
    from overnight.models.cells_training import train_cells

    out = tmp_path_factory.mktemp("cells-model")
    train_cells(tiny_dataset, out, tiny_cell_config, verbose=0)
    return out


@pytest.fixture(scope="session")
def tiny_pnp_model_dir(
    tiny_dataset: Path, tiny_pnp_config: PnpModelConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A particle model trained two steps on the tiny dataset."""
    from overnight.models.pnp_training import train_pnp

    out = tmp_path_factory.mktemp("pnp-model")
    train_pnp(tiny_dataset, out, tiny_pnp_config, verbose=0)
    return out
