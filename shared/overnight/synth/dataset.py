"""Synthetic digital-cytometry datasets on disk: images, ground truth and file names.

Layout under ``OUT``::

    images/<image_id>.tif            OME-TIFF, uint16 ZCYX (channel 0 "cell", 1 "pnp"),
                                     pixel 0.2 µm, z-step 0.5 µm
    truth/<image_id>/labels.tif      cell instance labels, YX uint32
    truth/<image_id>/cells.csv       cell_id, y, x, area_px, cell_type, pnp_count, ...
    truth/<image_id>/pnps.csv        z, y, x, cell_id, intensity
    truth/<image_id>/params.json     the values drawn for the field (FieldParams)
    synth.json                       seed, number of fields, size and the ranges used

``image_id`` follows the lab's file-name convention
``<YYYYMMDD>_<HHMM>_<user>_<instrument>_<sample>_<key>-<value>``.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import tifffile
from tqdm import tqdm

from overnight.synth.field import CHANNEL_NAMES, DEFAULT_RANGES, SyntheticField, draw_field
from overnight.synth.ranges import CytometryRanges, FieldParams

logger = logging.getLogger(__name__)

#: Acquisition time of field 0 in the generated file names; field i is 2 min later per index.
_FIRST_ACQUISITION = datetime(2026, 11, 25, 9, 30)
_SAMPLES = ("S01", "S02", "S03", "S04")
#: Namespace of the (deterministic) OME UUIDs of generated images.
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/overnight/synth")


def image_id_for(index: int) -> str:
    """Name generated field ``index`` (0-based) by the lab convention, without extension.

    >>> image_id_for(6)
    '20261125_0942_synth_darkfield_S03_field-007'
    """
    taken = _FIRST_ACQUISITION + timedelta(minutes=2 * index)
    sample = _SAMPLES[index % len(_SAMPLES)]
    return f"{taken:%Y%m%d_%H%M}_synth_darkfield_{sample}_field-{index + 1:03d}"


def write_image(path: Path, image: np.ndarray, params: FieldParams, file_uuid: uuid.UUID) -> None:
    """Write a ``ZCYX`` field as OME-TIFF with pixel size, z-step and channel names.

    The OME UUID is given, not random, so the same field gives the same bytes. The
    ``XResolution`` tag also holds the pixel size (pixels per cm), for readers without OME.
    """
    pixels_per_cm = 1e4 / params.pixel_size_um
    tifffile.imwrite(
        path,
        image,
        ome=True,
        photometric="minisblack",
        resolution=(pixels_per_cm, pixels_per_cm),
        resolutionunit="CENTIMETER",
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": params.pixel_size_um,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": params.pixel_size_um,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": params.z_step_um,
            "PhysicalSizeZUnit": "µm",
            "Channel": {"Name": list(CHANNEL_NAMES)},
            "UUID": f"urn:uuid:{file_uuid}",
        },
    )


def write_field(
    field: SyntheticField, out_dir: Path, image_id: str, file_uuid: uuid.UUID | None = None
) -> Path:
    """Write ``images/<image_id>.tif`` and ``truth/<image_id>/`` under ``out_dir``; image path.

    ``file_uuid`` names the image file in its OME metadata (default: derived from
    ``image_id``).
    """
    image_path = out_dir / "images" / f"{image_id}.tif"
    truth_dir = out_dir / "truth" / image_id
    image_path.parent.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    if file_uuid is None:
        file_uuid = uuid.uuid5(_UUID_NAMESPACE, image_id)
    write_image(image_path, field.image, field.params, file_uuid)
    tifffile.imwrite(
        truth_dir / "labels.tif", field.labels, compression="zlib", metadata={"axes": "YX"}
    )
    field.cells.to_csv(truth_dir / "cells.csv", index=False)
    field.pnps.to_csv(truth_dir / "pnps.csv", index=False)
    (truth_dir / "params.json").write_text(field.params.model_dump_json(indent=2) + "\n")
    return image_path


def write_dataset(
    out_dir: Path,
    n: int,
    seed: int,
    size: int | tuple[int, int] = 512,
    ranges: CytometryRanges = DEFAULT_RANGES,
    cell_types: tuple[str, ...] | None = None,
) -> list[Path]:
    """Write ``n`` synthetic fields and their ground truth under ``out_dir``.

    The layout is in this module's docstring. Field ``i`` is drawn
    from its own child of ``SeedSequence(seed)``, so it does not depend on ``n``, and the same
    seed writes the same bytes.

    Returns
    -------
    list of Path
        The image files, in order.
    """
    out_dir = Path(out_dir)
    children = np.random.SeedSequence(seed).spawn(n)
    paths = []
    for index, child in enumerate(tqdm(children, desc="fields", unit="field", disable=n <= 1)):
        field = draw_field(np.random.default_rng(child), size, ranges, cell_types)
        image_id = image_id_for(index)
        file_uuid = uuid.uuid5(_UUID_NAMESPACE, f"{seed}/{size}/{image_id}")
        paths.append(write_field(field, out_dir, image_id, file_uuid))
        logger.debug("wrote %s", image_id, extra={"image_id": image_id})
    manifest = {
        "generator": "overnight.synth.cytometry.write_dataset",
        "seed": seed,
        "n": n,
        "size": size,
        "cell_types": list(cell_types) if cell_types is not None else None,
        "ranges": ranges.model_dump(mode="json"),
    }
    (out_dir / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return paths
