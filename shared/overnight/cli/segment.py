"""``overnight segment``: instance labels of every image in a folder with a cell model."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import tifffile
from tqdm import tqdm

from overnight.errors import OvernightError
from overnight.imaging.files import image_id_from_name, require_images
from overnight.logs import configure_logging


@click.command()
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--model",
    "model_ref",
    default="",
    help="Cell model folder, name under models/, or URI [default: shipped cells].",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder.",
)
@click.option(
    "--channel", type=int, default=None, help="Channel to segment [default: the model's]."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def segment(
    input_dir: Path, model_ref: str, out_dir: Path, channel: int | None, quiet: bool
) -> None:
    """Write OUT/<image_id>/labels.tif (uint32 instance labels) for every TIFF in INPUT_DIR."""
    from overnight.imaging.reader import read_stack
    from overnight.models.cells import CellModel
    from overnight.models.loading import resolve_model_dir

    configure_logging("WARNING", "text")
    try:
        paths = require_images(input_dir)
        model = CellModel.load(resolve_model_dir(model_ref, "cells"))
        index = model.config.channel_index if channel is None else channel
        for path in tqdm(paths, unit="image", disable=quiet, dynamic_ncols=True):
            image_id = image_id_from_name(path.name)
            stack = read_stack(path, image_id=image_id, memmap=False)
            volume = np.asarray(stack.data[:, min(index, stack.shape_zcyx[1] - 1)], np.float32)
            labels = model.segment(volume).labels
            target = out_dir / image_id
            target.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(
                target / "labels.tif", labels, compression="zlib", metadata={"axes": "YX"}
            )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    if not quiet:
        click.echo(f"Labels of {len(paths)} images written under {out_dir}")
