"""The nuclei recipe: two stages on images/ + masks/, the first listed in the card's provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from overnight.models.config import CellModelConfig, UNetConfig
from overnight.models.presets import nuclei_config, nuclei_refine_config, train_nuclei

from .conftest import TINY_TRAIN

DSB = Path(__file__).parents[1] / "data" / "dsb"


def tiny_nuclei_config() -> CellModelConfig:
    config = nuclei_config()
    return config.model_copy(
        update={
            "unet": UNetConfig(ndim=2, in_channels=1, out_channels=3, n_levels=2, base_filters=4),
            "train": TINY_TRAIN.model_copy(update={"val_fraction": 0.5}),
            "tile_px": 96,
            "tile_overlap_px": 32,
        }
    )


def test_the_second_stage_continues_at_half_the_rate_on_new_samples() -> None:
    first = nuclei_config()
    second = nuclei_refine_config(first)
    assert second.train.learning_rate == first.train.learning_rate / 2
    assert second.train.seed != first.train.seed
    assert second.train.split_seed == first.train.split_seed  # the same validation images
    assert second.unet == first.unet and second.seed_h_px == first.seed_h_px


def test_nuclei_recipe_trains_two_stages_and_records_the_first(tmp_path: Path) -> None:
    card = train_nuclei(DSB, tmp_path / "nuclei", tiny_nuclei_config(), verbose=0)
    assert card.initial_weights and "stage1" in card.initial_weights
    assert len(card.provenance) == 1 and card.provenance[0].startswith("nuclei-stage1: 1 epochs")
    assert (tmp_path / "nuclei" / "weights.weights.h5").is_file()


def test_train_cells_on_masks_runs_the_nuclei_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import overnight.models.presets as presets
    from overnight.cli.main import cli

    monkeypatch.setattr(presets, "nuclei_config", tiny_nuclei_config)  # seconds, not an hour
    out = tmp_path / "nuclei"
    result = CliRunner().invoke(cli, ["train", "cells", "--data", str(DSB), "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "card.json").read_text())
    assert [line.split(":")[0] for line in card["provenance"]] == ["nuclei-stage1"]
    assert card["hyper_parameters"]["train"]["learning_rate"] == TINY_TRAIN.learning_rate / 2
