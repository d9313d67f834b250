"""Reading reviewers' corrections from results, for `overnight train --from-reviews`.

A reviewed dataset is either an embedded run's output folder (``overnight run IN --out OUT``:
each image's input is the file its ``result.json`` names) or a services dataset id in a store
(``--store URL``: the input is found in the dataset's source, named in its ``dataset.json``,
or among its uploads). Each annotated image contributes its latest annotation version
(:func:`overnight.review.annotation.load_annotation`): the corrected labels, spots and cell
types, with who made them, when, and which model versions they corrected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overnight.errors import ConfigError, NoImagesError, ObjectNotFoundError
from overnight.imaging.reader import read_stack
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import image_id_of, list_source, open_source
from overnight.models.corrections import (
    CorrectedField,
    ReviewSource,
    corrected_field,
    field_digest,
)
from overnight.results.layout import DATASET_FILE, DatasetResults
from overnight.results.record import ImageResult
from overnight.review.annotation import annotated_images, load_annotation
from overnight.storage import ObjectStore, open_store, validate_id
from overnight.storage.copies import local_copy

logger = logging.getLogger(__name__)

#: ``dataset.json``'s source value of datasets filled by uploads (see jobs.submit).
_UPLOAD_SOURCE = "upload"


@dataclass(frozen=True)
class ReviewedDataset:
    """A dataset's results and where its input images lie.

    ``label`` names it in provenance; ``source`` and ``source_prefix`` locate the inputs by
    image id (``source=None``: the file each ``result.json`` names, an embedded run).
    """

    label: str
    results: DatasetResults
    source: ObjectStore | None = None
    source_prefix: str = ""


def open_reviewed(
    reference: str, store_url: str | None = None, settings: JobSettings | None = None
) -> ReviewedDataset:
    """The reviewed dataset ``reference``: an output folder, or a dataset id in ``store_url``.

    With ``settings`` (a service) the dataset's source is opened as the workers open it:
    checked against the allowed roots, with the service's S3 credentials.

    Raises
    ------
    ConfigError
        A dataset id without ``store_url``, or a folder that holds no results.
    """
    folder = Path(reference).expanduser()
    if store_url is None:
        if not folder.is_dir():
            raise ConfigError(
                f"{reference}: not a folder; give an embedded run's output folder, or a "
                "services dataset id with --store URL"
            )
        return ReviewedDataset(str(folder.resolve()), DatasetResults(open_store(str(folder))))
    store = open_store(store_url, settings)
    results = DatasetResults.of_dataset(store, validate_id(reference))
    try:
        record = json.loads(results.store.read_bytes(results.key(DATASET_FILE)))
    except ObjectNotFoundError as err:
        raise ConfigError(
            f"{store_url}: no dataset {reference!r} ({results.key(DATASET_FILE)} is missing)"
        ) from err
    if record.get("source") == _UPLOAD_SOURCE:
        return ReviewedDataset(reference, results, store, f"uploads/{reference}/")
    source_url = str(record["source"])
    source = open_source(source_url, settings) if settings else open_store(source_url)
    return ReviewedDataset(reference, results, source)


@contextmanager
def _input_file(dataset: ReviewedDataset, image_id: str) -> Iterator[Path]:
    """A local file holding the input image of ``image_id``."""
    if dataset.source is None:
        result = ImageResult.read(dataset.results.store, dataset.results.image_prefix(image_id))
        path = Path(result.source)
        if not path.is_file():
            raise NoImagesError(
                f"{dataset.label}/{image_id}: its input {path} is gone; put it back to train on "
                "its corrections"
            )
        yield path
        return
    listing = list_source(dataset.source, dataset.source_prefix)
    keys = {image_id_of(i.key, dataset.source_prefix): i.key for i in listing.images}
    if image_id not in keys:
        raise NoImagesError(f"{dataset.label}/{image_id}: no input image in {dataset.source.url}")
    with local_copy(dataset.source, keys[image_id]) as (path, _):
        yield path


def read_corrections(dataset: ReviewedDataset, pnp_channel: int = 1) -> list[CorrectedField]:
    """Every annotated image of ``dataset`` with its latest annotation, as training fields."""
    found = []
    for image_id in annotated_images(dataset.results):
        annotation = load_annotation(dataset.results.store, dataset.results.image_prefix(image_id))
        if annotation is None:
            continue
        with _input_file(dataset, image_id) as path:
            stack = read_stack(path, image_id=image_id, memmap=False)
            image = np.asarray(stack.data)
        field = corrected_field(
            image_id,
            image,
            annotation.labels,
            annotation.spots,
            annotation.cell_types,
            stack.pixel_size_um,
            pnp_channel,
        )
        source = ReviewSource(
            dataset.label,
            image_id,
            annotation.version,
            annotation.author,
            annotation.created_at,
            dict(annotation.model_versions),
        )
        digest = field_digest(annotation.labels, annotation.spots, annotation.cell_types)
        found.append(CorrectedField(field, source, digest))
    logger.info("%s: %d corrected images", dataset.label, len(found))
    return found


def read_all_corrections(
    references: list[str], store_url: str | None = None, pnp_channel: int = 1
) -> list[CorrectedField]:
    """The corrections of every dataset in ``references``; NoImagesError when there are none."""
    fields = [
        field
        for reference in references
        for field in read_corrections(open_reviewed(reference, store_url), pnp_channel)
    ]
    if not fields:
        raise NoImagesError(
            f"{', '.join(references)}: no corrected images; save corrections in the QC web first"
        )
    return fields
