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
from overnight.models.retrain import (
    FINE_TUNE_L2_SP,
    FINE_TUNE_STEPS,
    MIN_REFIT_BASINS,
    fine_tune_config,
)
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


def test_the_cell_model_fine_tunes_with_more_steps_than_the_particle_model() -> None:
    cells = fine_tune_config(CellModelConfig(train=TrainConfig()), 6, None)
    pnp = fine_tune_config(PnpModelConfig(train=TrainConfig()), 6, None)
    assert cells.train.steps_per_epoch == FINE_TUNE_STEPS["cells"] == 40
    assert pnp.train.steps_per_epoch == FINE_TUNE_STEPS["pnp"] == 20
    assert fine_tune_config(CellModelConfig(train=TrainConfig()), 6, 7).train.steps_per_epoch == 7


def _square(probs: np.ndarray, at: tuple[int, int], p: tuple[float, float, float]) -> None:
    probs[at[0] : at[0] + 12, at[1] : at[1] + 12] = p


def _seeding_case(
    false_cell_on_reference: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """A corrected field with one dim cell (p(interior) 0.6, seen only below 0.65) and a
    reference field with one bright cell, plus a dim blob on background when asked."""
    dim, bright = (0.3, 0.6, 0.1), (0.0, 1.0, 0.0)
    corrected = np.zeros((32, 32, 3))
    corrected[..., 0] = 1.0
    _square(corrected, (4, 4), dim)
    truth = np.zeros((32, 32), np.uint32)
    truth[4:16, 4:16] = 1
    reference = np.zeros((32, 32, 3))
    reference[..., 0] = 1.0
    _square(reference, (4, 4), bright)
    if false_cell_on_reference:
        _square(reference, (18, 18), dim)
    reference_truth = np.zeros((32, 32), np.uint32)
    reference_truth[4:16, 4:16] = 1
    return [corrected], [truth], [reference], [reference_truth]


def _refit_thresholds(config: CellModelConfig, *fields: Any) -> Any:
    """``refit_seeding`` over the interior thresholds 0.5 and 0.65, from one true cell."""
    from overnight.models.cells_postprocess import refit_seeding

    return refit_seeding(config, *fields, grid={"marker_threshold": (0.5, 0.65)}, min_cells=1)


@pytest.mark.parametrize("harmful", [False, True])
def test_the_seeding_refit_moves_only_where_the_reference_fields_do_not_lose(
    harmful: bool,
) -> None:
    config = CellModelConfig(
        marker_threshold=0.65, seed_h_px=1.0, min_mean_foreground=0.0, min_cell_px=10
    )
    probs, truths, reference, reference_truths = _seeding_case(harmful)
    fitted, fit = _refit_thresholds(config, probs, truths, reference, reference_truths)
    assert fit.f1_before == 0.0 and fit.reference_before == 1.0
    if harmful:  # 0.5 finds the dim cell but a false one on the reference: not taken
        assert fitted.marker_threshold == 0.65 and fit.f1_after == 0.0
    else:
        assert fitted.marker_threshold == 0.5 and fit.f1_after == 1.0
        assert fit.reference_after == 1.0
    assert "seeding refit" in fit.line()


def test_a_better_reference_alone_does_not_move_the_seeding() -> None:
    config = CellModelConfig(
        marker_threshold=0.5, seed_h_px=1.0, min_mean_foreground=0.0, min_cell_px=10
    )
    # Corrected: one bright cell (found at either threshold); reference: a dim blob on
    # background that only 0.5 turns into a false cell, so 0.65 scores better there.
    probs, truths, _, _ = _seeding_case(False)
    probs[0][4:16, 4:16] = (0.0, 1.0, 0.0)
    _, _, reference, reference_truths = _seeding_case(True)
    fitted, fit = _refit_thresholds(config, probs, truths, reference, reference_truths)
    assert fit.reference_before is not None and fit.reference_before < 1.0
    assert fitted.marker_threshold == 0.5 and fit.f1_after == fit.f1_before == 1.0
