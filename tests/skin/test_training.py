"""Training the skin model from a folder in the synthetic layout (images/ + truth/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import ConfigError
from overnight.models.config import TrainConfig, UNetConfig
from overnight.models.skin import skin_config, train_skin
from overnight.skin.training import folder_planes

TINY = skin_config().model_copy(
    update={
        "unet": UNetConfig.model_validate(
            {"ndim": 2, "in_channels": 1, "out_channels": 6, "n_levels": 2, "base_filters": 4}
        ),
        "train": TrainConfig.model_validate(
            {
                "epochs": 1,
                "steps_per_epoch": 1,
                "batch_size": 2,
                "patch_yx_px": 32,
                "val_patches": 2,
                "patience": 1,
            }
        ),
    }
)


def test_folder_planes_pair_images_with_their_truth(tiny_series: Path) -> None:
    planes, used = folder_planes(tiny_series, TINY)
    assert len(planes.inputs) == 6 * 4 and len(used) == 2 * 6
    assert planes.inputs[0].shape == (128, 128, 1)  # 256² pooled by 2, one channel
    assert planes.labels[0].shape == (128, 128) and planes.labels[0].max() <= 5
    assert planes.ids[5].endswith(":z1")


def test_train_from_a_folder_records_its_source(tiny_series: Path, tmp_path: Path) -> None:
    out = train_skin(tiny_series, tmp_path / "m", config=TINY, time_budget_s=60)
    card = json.loads((out / "card.json").read_text())
    assert card["training_data"] == str(tiny_series) and len(card["training_data_sha256"]) == 64
    assert card["n_train_images"] + card["n_val_images"] == 24
    weights = json.loads((out / "config.json").read_text())["class_weights"]
    assert weights[0] == 0.0 and np.all(np.array(weights[1:]) > 0)


def test_unknown_training_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown training options"):
        train_skin(None, tmp_path / "m", config=TINY, n_series=1, colour="blue")
