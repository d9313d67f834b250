"""``overnight pk``: pharmacokinetic analysis of drug profiles from the command line."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import pandas as pd

from overnight.analysis.nca import AUC_METHODS, nca_table

logger = logging.getLogger(__name__)


@click.group()
def pk() -> None:
    """Pharmacokinetics: noncompartmental analysis (NCA) of concentration–time profiles."""


@pk.command("nca")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--time-col", required=True, help="Column with the sampling time (any unit T).")
@click.option(
    "--conc-col", required=True, help="Column with the concentration or signal (any unit C)."
)
@click.option(
    "--group-col",
    "group_cols",
    multiple=True,
    help="Column identifying one profile; repeat for several (e.g. compartment, depth).",
)
@click.option(
    "--auc-method",
    type=click.Choice(AUC_METHODS),
    default="linlog",
    show_default=True,
    help="linlog: linear trapezoids up, log trapezoids down; linear: linear throughout.",
)
@click.option(
    "--min-points-lambda-z",
    type=click.IntRange(min=3),
    default=3,
    show_default=True,
    help="Fewest terminal points for the lambda_z fit.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="CSV to write: one row per profile.",
)
def nca_command(
    data: Path,
    time_col: str,
    conc_col: str,
    group_cols: tuple[str, ...],
    auc_method: str,
    min_points_lambda_z: int,
    out: Path,
) -> None:
    """Run NCA on every profile in DATA.csv (one row per sample) and write one row per profile.

    \b
    Output columns: the group columns, then
      cmax, tmax        peak concentration (first one) and its time
      clast, tlast      last concentration > 0 and its time
      auc_last          AUC from the first time to tlast [C·T]
      auc_inf_obs       auc_last + clast / lambda_z
      lambda_z          terminal rate [1/T]: log-linear fit on the last >= 3 points after
                        tmax, chosen by adjusted R² (within 1e-4 of the best, most points)
      half_life         ln2 / lambda_z [T]
      r2_adj, n_points_lambda_z   quality and size of that fit
      reason            why any field is empty (too few points, no decline, ...)

    Missing values are dropped and times sorted. Zeros (below the limit of quantification)
    before the first value > 0 are kept, zeros between values > 0 dropped (PKNCA's default).

    \b
    Example:
      overnight pk nca profiles.csv --time-col time --conc-col signal
          --group-col compartment --out nca.csv     (one command line)
    """  # noqa: D301 (click needs the real \b character to keep the layout)
    try:
        table = pd.read_csv(data)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise click.BadParameter(f"{data} is not a readable CSV: {err}", param_hint="DATA") from err
    missing = [col for col in (time_col, conc_col, *group_cols) if col not in table.columns]
    if missing:
        raise click.UsageError(
            f"{data} has no column(s) {', '.join(missing)}; it has {', '.join(table.columns)}"
        )
    result = nca_table(
        table,
        time_col,
        conc_col,
        group_cols=group_cols,
        auc_method=auc_method,  # type: ignore[arg-type]  # checked by click.Choice
        min_points_lambda_z=min_points_lambda_z,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(out, index=False)
    n_missing = int(result["lambda_z"].isna().sum())
    logger.info("NCA of %d profile(s) written to %s", len(result), out)
    click.echo(
        f"{len(result)} profile(s) -> {out}"
        + (f" ({n_missing} without lambda_z: see the reason column)" if n_missing else "")
    )


from overnight.cli.pk_run import run as _run  # noqa: E402

pk.add_command(_run)
