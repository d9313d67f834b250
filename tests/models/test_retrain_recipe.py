"""The fine-tune recipe of ``--from-reviews``: L2-SP toward the initial weights, and the
particle model's multiplicity model kept when the validation fields are too few to refit it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overnight.models.config import CellModelConfig, PnpModelConfig, TrainConfig
from overnight.models.datasets import load_split
from overnight.models.multiplicity import FEATURES, MULTIPLICITY_FILE, fit_multiplicity
from overnight.models.retrain import FINE_TUNE_L2_SP, MIN_REFIT_BASINS, fine_tune_config
from overnight.models.training import anchor_weights


def _dense_network() -> Any:
    import keras

    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_l2_sp_penalty_is_the_squared_distance_from_the_weights_it_started_from() -> None:
    network = _dense_network()
    anchor_weights(network, 0.5)
    assert sum(float(v) for v in network.losses) == pytest.approx(0.0)
    for variable in network.trainable_weights:  # 3×2 kernel + 2 biases, each moved by 0.1
        variable.assign(variable.numpy() + 0.1)
    assert sum(float(v) for v in network.losses) == pytest.approx(0.5 * 8 * 0.01, rel=1e-4)


def _distance_after_fit(network: Any, strength: float) -> float:
    import keras

    start = [w.copy() for w in network.get_weights()]
    if strength:
        anchor_weights(network, strength)
    network.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = np.stack([x.sum(1) * 3 + 2, -x[:, 0] * 4], axis=1)  # far from the initial weights
    network.fit(x, y, epochs=20, batch_size=16, verbose=0)
    end = network.get_weights()
    return float(sum(((a - b) ** 2).sum() for a, b in zip(end, start, strict=True)))


def test_l2_sp_keeps_a_fine_tune_near_the_initial_weights() -> None:
    import keras

    keras.utils.set_random_seed(3)
    free = _distance_after_fit(_dense_network(), 0.0)
    keras.utils.set_random_seed(3)
    anchored = _distance_after_fit(_dense_network(), 2.0)
    assert 0 < anchored < 0.1 * free


def test_the_fine_tune_schedule_anchors_the_cell_model_only() -> None:
    cells = fine_tune_config(CellModelConfig(train=TrainConfig()), None, None)
    pnp = fine_tune_config(PnpModelConfig(train=TrainConfig()), None, None)
    assert cells.train.l2_sp == FINE_TUNE_L2_SP["cells"] > 0
    assert pnp.train.l2_sp == FINE_TUNE_L2_SP["pnp"]
    assert TrainConfig().l2_sp == 0.0  # training from scratch is not anchored


def test_too_few_validation_basins_keep_the_initial_multiplicity_model(
    tiny_dataset: Path, tiny_pnp_model_dir: Path, tmp_path: Path
) -> None:
    from overnight.models.config import load_config
    from overnight.models.pnp_training import train_pnp
    from overnight.models.registry import WEIGHTS_FILE

    init = tmp_path / "init"
    shutil.copytree(tiny_pnp_model_dir, init)
    config = load_config(init)
    assert isinstance(config, PnpModelConfig)
    # A multiplicity model that no fit on the tiny fields gives: random particle numbers.
    rng = np.random.default_rng(1)
    planted = fit_multiplicity(rng.normal(size=(80, len(FEATURES))), rng.integers(0, 8, 80))
    planted.save(init)
    text = (init / MULTIPLICITY_FILE).read_text()
    split = load_split(tiny_dataset, 0.34, 0, None)
    kept, scratch = tmp_path / "kept", tmp_path / "scratch"
    for out, weights in ((kept, init / WEIGHTS_FILE), (scratch, None)):
        train_pnp(
            tiny_dataset,
            out,
            config,
            epochs=0 if weights else 1,
            verbose=0,
            initial_weights=weights,
            split=split,
            min_multiplicity_basins=MIN_REFIT_BASINS,
        )
    # The tiny fields give fewer basins than a refit needs: the initial model's stays, and
    # a model trained from scratch counts by basin integral.
    assert (kept / MULTIPLICITY_FILE).read_text() == text
    assert not (scratch / MULTIPLICITY_FILE).exists()
