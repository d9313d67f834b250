"""``overnight train``: train the learned models from annotated images.

``overnight train cells|pnp --data DIR --out MODEL_DIR`` trains one model from ``DIR`` in the
output format (``images/`` + ``truth/<id>/labels.tif, cells.csv, pnps.csv``) or, for cells,
``images/`` + ``masks/``. ``overnight train all --out models`` draws a fresh synthetic training
set with the generator and trains every shipped synthetic-data model (what ``make train`` runs).

``overnight train cells|pnp --from-reviews DATASET [DATASET...] --init MODEL --out MODEL_DIR``
fine-tunes ``MODEL`` (a folder, a name under models/, or a registry reference
``cells@<version>``) on the reviewers' corrections of each DATASET: an embedded run's output
folder, or a services dataset id with ``--store URL``; ``--publish URL`` puts the new model into
the registry at URL as a new version.
"""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from overnight.errors import OvernightError
from overnight.logs import configure_logging

if TYPE_CHECKING:
    from overnight.models.retrain import ModelKind

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
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Training images: images/ with truth/ (output format) or masks/ (or use --from-reviews).",
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
    type=str,
    default=None,
    help="Start from this model's weights (resume or fine-tune; same architecture): a folder, "
    "a name under models/, or a registry reference such as cells@latest.",
)
_reviews_options = (
    click.option(
        "--from-reviews",
        "reviews",
        multiple=True,
        help="Fine-tune on the corrections saved in the QC web for this dataset: an embedded "
        "run's output folder, or a services dataset id with --store. More may follow as "
        "arguments.",
    ),
    click.argument("more_reviews", nargs=-1),
    click.option("--store", "store_url", default=None, help="Results store of dataset ids."),
    click.option(
        "--synthetic-share",
        type=click.FloatRange(0.0, 0.9),
        default=0.0,
        show_default=True,
        help="Share of the training fields drawn fresh from TRAINING_RANGES (keeps the domain).",
    ),
    click.option(
        "--val-share",
        type=click.FloatRange(0.05, 0.5),
        default=0.2,
        show_default=True,
        help="Share of the corrected images held out for validation.",
    ),
    click.option(
        "--keep-scale",
        is_flag=True,
        default=False,
        help="Cell model: keep the initial model's input scale instead of fitting it to the "
        "size of the corrected cells (the image is resized by it before the network).",
    ),
    click.option(
        "--publish",
        "publish_url",
        default=None,
        help="Registry URL (file:///... or s3://...) to publish the new model to as a version.",
    ),
)


def _with_review_options(command):
    for option in reversed(_reviews_options):
        command = option(command)
    return command


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


def _weights(init: str | None, kind: str) -> Path | None:
    from overnight.models.loading import WEIGHTS_FILE, resolve_model_dir

    return None if init is None else resolve_model_dir(init, kind) / WEIGHTS_FILE


def _train_from_reviews(kind: ModelKind, init: str | None, out_dir: Path, **options) -> None:
    """Fine-tune ``init`` (default: the shipped model) on the corrections of the datasets."""
    from overnight.jobs.retrain import read_all_corrections
    from overnight.models.config import load_config
    from overnight.models.loading import resolve_model_dir
    from overnight.models.registry import publish_model
    from overnight.models.retrain import FineTuneOptions, fine_tune
    from overnight.storage import open_store

    init_dir = resolve_model_dir(init, kind)
    pnp_channel = load_config(init_dir).channel_index if kind == "pnp" else 1
    fields = read_all_corrections(options["datasets"], options["store_url"], pnp_channel)
    click.echo(f"{len(fields)} corrected images from {', '.join(options['datasets'])}")
    tuning = FineTuneOptions(
        epochs=options["epochs"],
        steps=options["steps"],
        val_fraction=options["val_share"],
        synthetic_share=options["synthetic_share"],
        fit_scale=not options["keep_scale"],
    )
    _report(fine_tune(kind, fields, init_dir, out_dir, tuning, init or f"{kind}@default"))
    if options["publish_url"]:
        entry = publish_model(open_store(options["publish_url"]), out_dir, kind)
        click.echo(f"published {entry.reference} to {options['publish_url']}")


def _reviews(reviews: tuple[str, ...], more: tuple[str, ...]) -> list[str]:
    if more and not reviews:
        raise click.UsageError(f"unexpected arguments {list(more)}; did you mean --from-reviews?")
    return [*reviews, *more]


def _need_data(data_dir: Path | None) -> Path:
    if data_dir is None:
        raise click.UsageError("give --data DIR (annotated images) or --from-reviews DATASET")
    return data_dir


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
@_with_review_options
def train_cells_command(
    data_dir: Path | None,
    out_dir: Path,
    epochs: int | None,
    steps: int | None,
    max_images: int | None,
    config_path: Path | None,
    init_dir: str | None,
    reviews: tuple[str, ...],
    more_reviews: tuple[str, ...],
    **review_options,
) -> None:
    """Train the cell model (3-class U-Net, watershed, type classifier).

    On images/ + masks/ (DSB2018-like nuclei) with no --config, --init or --epochs, this runs
    the shipped nuclei recipe: two stages, the second at half the learning rate.
    """
    from overnight.models.cells_training import train_cells
    from overnight.models.datasets import dataset_layout
    from overnight.models.presets import train_nuclei

    try:
        datasets = _reviews(reviews, more_reviews)
        if datasets:
            _train_from_reviews(
                "cells",
                init_dir,
                out_dir,
                datasets=datasets,
                epochs=epochs,
                steps=steps,
                **review_options,
            )
            return
        data_dir = _need_data(data_dir)
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
                initial_weights=_weights(init_dir, "cells"),
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
@_with_review_options
def train_pnp_command(
    data_dir: Path | None,
    out_dir: Path,
    epochs: int | None,
    steps: int | None,
    max_images: int | None,
    config_path: Path | None,
    init_dir: str | None,
    reviews: tuple[str, ...],
    more_reviews: tuple[str, ...],
    **review_options,
) -> None:
    """Train the particle model (3D U-Net density, spot extraction)."""
    from overnight.models.config import PnpModelConfig
    from overnight.models.pnp_training import train_pnp

    try:
        datasets = _reviews(reviews, more_reviews)
        if datasets:
            _train_from_reviews(
                "pnp",
                init_dir,
                out_dir,
                datasets=datasets,
                epochs=epochs,
                steps=steps,
                **review_options,
            )
            return
        data_dir = _need_data(data_dir)
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
                initial_weights=_weights(init_dir, "pnp"),
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
@click.option(
    "--time-budget",
    "time_budget_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop training after this many seconds [default: the config's, ~32 min].",
)
@click.option(
    "--n-series",
    type=click.IntRange(min=1),
    default=None,
    help="Synthetic training series to draw [default: 64].",
)
@click.option(
    "--depth-input/--no-depth-input",
    default=True,
    show_default=True,
    help="Feed each plane's depth to the network (then every use needs the planes' depths).",
)
def train_skin_command(
    data_dir: Path | None,
    out_dir: Path,
    epochs: int | None,
    time_budget_s: float | None,
    n_series: int | None,
    depth_input: bool,
) -> None:
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
        options: dict[str, object] = {"depth_input": depth_input}
        if time_budget_s is not None:
            options["time_budget_s"] = time_budget_s
        if n_series is not None:
            options["n_series"] = n_series
        skin.train_skin(data_dir, out_dir, epochs=epochs, **options)
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
