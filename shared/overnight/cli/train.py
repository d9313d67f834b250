"""``overnight train``: train the learned models from annotated images.

``overnight train cells|pnp --data DIR --out MODEL_DIR`` trains one model from ``DIR`` in the
output format (``images/`` + ``truth/<id>/labels.tif, cells.csv, pnps.csv``) or, for cells,
``images/`` + ``masks/``. ``overnight train all --out models`` draws a fresh synthetic training
set with the generator and trains every shipped synthetic-data model (what ``make train`` runs).
"""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
from pathlib import Path

import click

from overnight.errors import OvernightError
from overnight.logs import configure_logging

logger = logging.getLogger(__name__)

#: Synthetic training set of ``train all``: fields, side (px) and seed. The cell model trains
#: on every field, the particle model on the first ``PNP_N_FIELDS`` (each field is drawn from
#: its own seed, so these are the same 64 fields whatever the set's size).
ALL_N_FIELDS = 96
PNP_N_FIELDS = 64
ALL_FIELD_PX = 512
ALL_SEED = 20261125

_data_option = click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Training images: images/ with truth/ (output format) or masks/.",
)
_out_option = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model folder to write (config.json, weights, card.json).",
)
_epochs_option = click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=None,
    help="Most epochs [default: the config's]. 0 keeps the --init weights and refits only "
    "what follows the network (cell types; the particle model's gain and multiplicity).",
)
_steps_option = click.option(
    "--steps", type=int, default=None, help="Batches per epoch [default: the config's]."
)
_images_option = click.option(
    "--max-images", type=int, default=None, help="Use only the first N images."
)
_init_option = click.option(
    "--init",
    "init_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start from this model folder's weights (resume or fine-tune; same architecture).",
)
_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A config.json to start from (e.g. another model's).",
)


def _with_steps(config, steps: int | None):
    if steps is None:
        return config
    return config.model_copy(
        update={"train": config.train.model_copy(update={"steps_per_epoch": steps})}
    )


def _cell_config(data_dir: Path, config_path: Path | None):
    from overnight.models.config import CellModelConfig
    from overnight.models.datasets import dataset_layout
    from overnight.models.presets import nuclei_config

    if config_path is not None:
        return CellModelConfig.model_validate(json.loads(config_path.read_text()))
    return nuclei_config() if dataset_layout(data_dir) == "masks" else CellModelConfig()


def _weights(init_dir: Path | None) -> Path | None:
    from overnight.models.loading import WEIGHTS_FILE

    return None if init_dir is None else init_dir / WEIGHTS_FILE


def _report(card) -> None:
    metrics = ", ".join(f"{k}={v}" for k, v in card.metrics.items())
    click.echo(f"{card.name}: {card.epochs_run} epochs, {card.training_seconds:.0f} s; {metrics}")


@click.group()
def train() -> None:
    """Train the learned models (cells, pnp, skin) from annotated images."""
    configure_logging("INFO", "text")


@train.command("cells")
@_data_option
@_out_option
@_epochs_option
@_steps_option
@_images_option
@_config_option
@_init_option
def train_cells_command(
    data_dir: Path,
    out_dir: Path,
    epochs: int | None,
    steps: int | None,
    max_images: int | None,
    config_path: Path | None,
    init_dir: Path | None,
) -> None:
    """Train the cell model (3-class U-Net, watershed, type classifier).

    On images/ + masks/ (DSB2018-like nuclei) with no --config, --init or --epochs, this runs
    the shipped nuclei recipe: two stages, the second at half the learning rate.
    """
    from overnight.models.cells_training import train_cells
    from overnight.models.datasets import dataset_layout
    from overnight.models.presets import train_nuclei

    try:
        if dataset_layout(data_dir) == "masks" and not (config_path or init_dir or epochs):
            _report(
                train_nuclei(data_dir, out_dir, _with_steps(_cell_config(data_dir, None), steps))
            )
            return
        config = _with_steps(_cell_config(data_dir, config_path), steps)
        _report(
            train_cells(
                data_dir,
                out_dir,
                config,
                epochs=epochs,
                max_images=max_images,
                initial_weights=_weights(init_dir),
            )
        )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@train.command("pnp")
@_data_option
@_out_option
@_epochs_option
@_steps_option
@_images_option
@_config_option
@_init_option
def train_pnp_command(
    data_dir: Path,
    out_dir: Path,
    epochs: int | None,
    steps: int | None,
    max_images: int | None,
    config_path: Path | None,
    init_dir: Path | None,
) -> None:
    """Train the particle model (3D U-Net density, spot extraction)."""
    from overnight.models.config import PnpModelConfig
    from overnight.models.pnp_training import train_pnp

    try:
        config = (
            PnpModelConfig.model_validate(json.loads(config_path.read_text()))
            if config_path
            else PnpModelConfig()
        )
        _report(
            train_pnp(
                data_dir,
                out_dir,
                _with_steps(config, steps),
                epochs=epochs,
                max_images=max_images,
                initial_weights=_weights(init_dir),
            )
        )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@train.command("skin")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Series written by `overnight synth skin` or a lab's annotated series "
    "[default: draw synthetic series].",
)
@_out_option
@_epochs_option
def train_skin_command(data_dir: Path | None, out_dir: Path, epochs: int | None) -> None:
    """Train the skin-compartment U-Net (synthetic series unless --data is given)."""
    try:
        skin = importlib.import_module("overnight.models.skin")
    except ModuleNotFoundError as err:
        if err.name != "overnight.models.skin":
            raise
        raise click.ClickException(
            "this installation has no skin model (overnight.models.skin is missing)"
        ) from err
    try:
        skin.train_skin(data_dir, out_dir, epochs=epochs)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@train.command("all")
@_out_option
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the synthetic training set [default: a temporary folder].",
)
@click.option(
    "--n-fields",
    type=int,
    default=ALL_N_FIELDS,
    show_default=True,
    help="Synthetic fields to draw.",
)
@click.option(
    "--seed", type=int, default=ALL_SEED, show_default=True, help="Seed of the synthetic set."
)
@click.option(
    "--nuclei-data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also train models/nuclei-dsb2018 from this images/ + masks/ folder.",
)
@_epochs_option
def train_all_command(
    out_dir: Path,
    data_dir: Path | None,
    n_fields: int,
    seed: int,
    nuclei_data: Path | None,
    epochs: int | None,
) -> None:
    """Draw a synthetic training set and train every shipped model into OUT."""
    from overnight.models.cells_training import train_cells
    from overnight.models.config import CellModelConfig, PnpModelConfig
    from overnight.models.pnp_training import train_pnp
    from overnight.models.presets import nuclei_config, train_nuclei
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import TRAINING_RANGES

    with tempfile.TemporaryDirectory(prefix="overnight-train-") as scratch:
        folder = data_dir or Path(scratch)
        try:
            if not (folder / "images").is_dir():
                click.echo(
                    f"Drawing {n_fields} synthetic fields ({ALL_FIELD_PX}² px, seed {seed}, "
                    f"the widened TRAINING_RANGES) into {folder}"
                )
                write_dataset(folder, n_fields, seed, ALL_FIELD_PX, TRAINING_RANGES)
            _report(train_cells(folder, out_dir / "cells", CellModelConfig(), epochs=epochs))
            _report(
                train_pnp(
                    folder,
                    out_dir / "pnp",
                    PnpModelConfig(),
                    epochs=epochs,
                    max_images=min(PNP_N_FIELDS, n_fields),
                )
            )
            from overnight.models.skin import train_skin

            train_skin(None, out_dir / "skin", epochs=epochs)
            if nuclei_data is not None:
                _report(train_nuclei(nuclei_data, out_dir / "nuclei-dsb2018", nuclei_config()))
        except OvernightError as err:
            raise click.ClickException(str(err)) from err
