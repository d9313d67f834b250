"""``overnight synth``: write synthetic datasets with ground truth."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import click


@click.group()
def synth() -> None:
    """Write synthetic images with ground truth, drawn from the imaging models.

    The images cover the whole parameter range of IMAGING_MODEL.md; they are the training
    data of the models and the test data of the benchmarks. The same --seed writes the same
    bytes.
    """


@synth.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Number of fields of view to write.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; field i depends only on the seed and i.",
)
@click.option(
    "--size",
    type=click.IntRange(min=128),
    default=512,
    show_default=True,
    help="Field side in pixels (256-2048 in the imaging model).",
)
@click.option(
    "--ranges",
    "ranges_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="YAML/JSON file overriding parameter ranges, e.g. 'snr: [4, 8]' or a cell_types list.",
)
@click.option(
    "--cell-type",
    "cell_types",
    multiple=True,
    help="Draw only this cell type (repeat for several; default: every type in the ranges).",
)
def cytometry(
    out: Path,
    n: int,
    seed: int,
    size: int,
    ranges_file: Path | None,
    cell_types: tuple[str, ...],
) -> None:
    """Write N digital-cytometry fields (dark-field PNP immunoassay) to OUT.

    \b
    OUT/images/<image_id>.tif          uint16 ZCYX, channel 0 = cells, 1 = PNPs
    OUT/truth/<image_id>/labels.tif    cell instance labels (YX)
    OUT/truth/<image_id>/cells.csv     cell_id, y, x, area_px, cell_type, pnp_count
    OUT/truth/<image_id>/pnps.csv      z, y, x, cell_id, intensity
    OUT/truth/<image_id>/params.json   the values drawn for the field (SNR, gain, ...)
    OUT/synth.json                     seed, size and the ranges used

    Example: overnight synth cytometry demo --n 12 --seed 1
    """  # noqa: D301 (click's \b marker must be the backspace character)
    from pydantic import ValidationError

    from overnight.config import read_config_file
    from overnight.errors import ConfigError
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import CytometryRanges

    try:
        values = read_config_file(ranges_file) if ranges_file else {}
        ranges = CytometryRanges.model_validate(values)
        paths = write_dataset(
            out, n=n, seed=seed, size=size, ranges=ranges, cell_types=cell_types or None
        )
    except ValidationError as err:
        raise click.BadParameter(str(err), param_hint="--ranges") from err
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {len(paths)} fields to {out / 'images'} and their truth to {out / 'truth'}")


@synth.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--n-timepoints",
    type=click.IntRange(min=1),
    default=None,
    help="Timepoints to write (default: the generator's draw from the imaging model).",
)
@click.option(
    "--n-depths",
    type=click.IntRange(min=1),
    default=None,
    help="Depths per timepoint (default: the generator's draw from the imaging model).",
)
@click.option(
    "--size",
    type=click.IntRange(min=64),
    default=None,
    help="Plane side in pixels (default: the generator's).",
)
@click.option(
    "--drug-snr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Drug-channel SNR at Cmax (default: drawn from 3-30).",
)
def skin(
    out: Path,
    seed: int,
    n_timepoints: int | None,
    n_depths: int | None,
    size: int | None,
    drug_snr: float | None,
) -> None:
    """Write a synthetic skin pharmacokinetics (SRS) time series with its truth to OUT."""
    try:
        module = importlib.import_module("overnight.synth.skin")
    except ModuleNotFoundError as err:
        if err.name != "overnight.synth.skin":
            raise
        raise click.ClickException(
            "the skin generator (overnight.synth.skin) is not in this installation"
        ) from err
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("n_timepoints", n_timepoints),
            ("n_depths", n_depths),
            ("size", size),
            ("drug_snr", drug_snr),
        )
        if value is not None
    }
    accepted = inspect.signature(module.write_skin_dataset).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    for name in options:
        if not takes_any and name not in accepted:
            flag = "--" + name.replace("_", "-")
            raise click.ClickException(f"this skin generator does not support {flag}")
    written = module.write_skin_dataset(out, seed, **options)
    count = f"{len(written)} images " if isinstance(written, list) else ""
    click.echo(f"wrote a skin dataset ({count}with truth) to {out}")
