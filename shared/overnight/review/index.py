"""The per-dataset image index: one row per complete image, built from ``result.json`` files.

Building it reads three small files per image (manifest, result, verdict), so a dataset of
10,000 images takes seconds; :func:`build_index` therefore reuses every row of the previous
index whose files have not changed (same ETags in the listing) and reads only the rest.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from pydantic import ValidationError

from overnight.errors import ObjectNotFoundError
from overnight.review.listing import MANIFEST, RESULT, VERDICT, DatasetListing, ImageFiles
from overnight.review.verdicts import Verdict, VerdictFile, parse_verdict
from overnight.storage.base import ObjectStore
from overnight.storage.publish import Manifest

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Metadata keys shown first, in this order; other keys follow in the order first seen.
KNOWN_METADATA = ("date", "time", "user", "instrument", "sample")
#: Summary counts that are not per cell type.
_GLOBAL_COUNTS = ("n_cells", "n_pnps", "n_pnps_on_glass")
#: Threads reading result files when (re)building an index (latency-bound on S3).
READ_THREADS = 8


@dataclass(frozen=True)
class ImageRow:
    """One complete image as the dataset table shows it.

    ``metadata`` values are strings (as shown and filtered); ``summary`` holds the counts and
    statistics of ``result.json`` (``n_cells``, ``n_<type>``, ``pnp_per_<type>_mean``, ...).
    """

    image_id: str
    prefix: str
    metadata: dict[str, str]
    summary: dict[str, float]
    pipeline: str = ""
    finished_at: str = ""
    n_warnings: int = 0
    verdict: VerdictFile | None = None
    signature: tuple[str, ...] = ()
    qc_flags: tuple[str, ...] = ()
    doubt: int = 0

    @property
    def verdict_name(self) -> str:
        """``accepted``, ``rejected``, ``flagged`` or ``unreviewed``."""
        return self.verdict.verdict.value if self.verdict else "unreviewed"

    def pnps_of_type(self, type_name: str) -> float:
        """PNPs on cells of ``type_name`` (count): mean per cell times the number of cells."""
        n = self.summary.get(f"n_{type_name}", 0.0)
        mean = self.summary.get(f"pnp_per_{type_name}_mean", float("nan"))
        return float(round(mean * n)) if n and mean == mean else 0.0


@dataclass(frozen=True)
class DatasetIndex:
    """Every complete image of one dataset, in ``image_id`` order."""

    dataset_id: str
    prefix: str
    rows: tuple[ImageRow, ...]
    metadata_columns: tuple[str, ...]
    type_names: tuple[str, ...]
    listing_signature: str = ""
    by_id: dict[str, ImageRow] = field(default_factory=dict, compare=False, repr=False)
    _memo: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.by_id:
            object.__setattr__(self, "by_id", {row.image_id: row for row in self.rows})

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` once per index (an index never changes; a new verdict makes a new one).

        Used for what every page view would otherwise recompute over all rows: sort orders,
        distinct metadata values, the dataset's owner and date.
        """
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def verdict_counts(self) -> dict[str, int]:
        """How many images are accepted, rejected, flagged and unreviewed."""

        def compute() -> dict[str, int]:
            counts = Counter(row.verdict_name for row in self.rows)
            names = (*(v.value for v in Verdict), "unreviewed")
            return {name: counts.get(name, 0) for name in names}

        return dict(self.memo("verdict_counts", compute))

    def with_verdict(self, image_id: str, verdict: VerdictFile) -> DatasetIndex:
        """A copy where ``image_id`` carries ``verdict`` (after a reviewer saved one)."""
        rows = tuple(
            replace(row, verdict=verdict) if row.image_id == image_id else row for row in self.rows
        )
        return replace(self, rows=rows, by_id={}, _memo={})


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _numbers(summary: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif value is None:
            out[key] = float("nan")
    return out


def _manifest_matches(manifest: Manifest, files: ImageFiles, listing: DatasetListing) -> bool:
    """Whether every artefact of ``manifest`` is in the listing with the size it records."""
    for name, entry in manifest.artefacts.items():
        info = files.files.get(name)
        if info is None or info.size != entry.size:
            logger.warning(
                "ignoring %s: artefact %s missing or of another size", files.prefix, name
            )
            return False
    return True


def read_row(store: ObjectStore, files: ImageFiles, listing: DatasetListing) -> ImageRow | None:
    """The row of one image folder, or None when it holds no valid, complete result.

    The manifest is checked against the listing (each artefact present with its recorded
    size), which is :func:`overnight.storage.read_manifest` with ``check_content=False``
    without one ``stat`` per artefact.
    """
    if not files.has_manifest or RESULT not in files.files:
        return None
    try:
        manifest = Manifest.model_validate_json(store.read_bytes(f"{files.prefix}/{MANIFEST}"))
        if not _manifest_matches(manifest, files, listing):
            return None
        record = json.loads(store.read_bytes(f"{files.prefix}/{RESULT}"))
        verdict = None
        if VERDICT in files.files:
            key = f"{files.prefix}/{VERDICT}"
            verdict = parse_verdict(store.read_bytes(key), key)
    except ObjectNotFoundError:  # deleted since the listing
        return None
    except (ValidationError, json.JSONDecodeError) as err:
        logger.warning("ignoring %s: unreadable manifest or result (%s)", files.prefix, err)
        return None
    return ImageRow(
        image_id=files.image_id,
        prefix=files.prefix,
        metadata={str(k): _stringify(v) for k, v in (record.get("metadata") or {}).items()},
        summary=_numbers(record.get("summary") or {}),
        pipeline=_pipeline_label(record.get("pipeline")),
        finished_at=str(record.get("finished_at", "")),
        n_warnings=len(record.get("warnings") or []),
        verdict=verdict,
        signature=files.signature(),
        qc_flags=tuple(str(f) for f in (record.get("qc") or {}).get("flags") or ()),
        doubt=int((record.get("qc") or {}).get("doubt") or 0),
    )


def _pipeline_label(pipeline: object) -> str:
    """``"cytometry 1"`` from a pipeline record: a ``{name, version}`` mapping or a bare name."""
    if isinstance(pipeline, dict):
        return f"{pipeline.get('name', '')} {pipeline.get('version', '')}".strip()
    return str(pipeline or "")


def metadata_columns(rows: tuple[ImageRow, ...]) -> tuple[str, ...]:
    """Every metadata key of ``rows``: the known ones first, then others as first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.metadata:
            seen.setdefault(key, None)
    known = [k for k in KNOWN_METADATA if k in seen]
    return (*known, *(k for k in seen if k not in KNOWN_METADATA))


def type_names(rows: tuple[ImageRow, ...]) -> tuple[str, ...]:
    """Cell types named in the summaries (``n_<type>`` keys), in the order first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.summary:
            if key.startswith("n_") and key not in _GLOBAL_COUNTS:
                seen.setdefault(key[2:], None)
    return tuple(seen)


def build_index(
    store: ObjectStore, listing: DatasetListing, previous: DatasetIndex | None = None
) -> DatasetIndex:
    """Index every complete image of ``listing``, reusing unchanged rows of ``previous``.

    Raises
    ------
    StorageError
        When the store cannot be read (other than files deleted since the listing).
    """
    reuse = previous.by_id if previous is not None else {}
    kept: dict[str, ImageRow] = {}
    to_read: list[ImageFiles] = []
    for image_id, files in listing.images.items():
        old = reuse.get(image_id)
        if old is not None and old.signature == files.signature():
            kept[image_id] = old
        elif files.has_manifest:
            to_read.append(files)
    if to_read:
        logger.info("indexing %d image(s) of %s", len(to_read), listing.dataset_id)
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            for row in pool.map(lambda f: read_row(store, f, listing), to_read):
                if row is not None:
                    kept[row.image_id] = row
    rows = tuple(kept[image_id] for image_id in sorted(kept))
    return DatasetIndex(
        dataset_id=listing.dataset_id,
        prefix=listing.prefix,
        rows=rows,
        metadata_columns=metadata_columns(rows),
        type_names=type_names(rows),
        listing_signature=listing.signature,
    )
