"""What changed from one version of an image's corrections to the next: cells and particles.

A version's changes are found by comparing its arrays with its parent's (the model's result
for the first version), not by replaying the edits: the comparison needs nothing but the
stored files, works on versions saved by any client, and also describes a restored version
(what the restore undid).

Cells are matched by pixel overlap, ids play no part: a cell of the earlier version is
*removed* when less than half of it lies in any later cell; a later cell is *added* when less
than half of it lies in earlier cells; a later cell that holds at least half of each of two or
more earlier cells *merged* them; an earlier cell that holds at least half of each of two or
more later cells was *split*. A cell matched one-to-one whose pixels differ was *reshaped*.
Particles are matched by their position (0.01 px, as ``spots.csv`` stores it).

>>> import numpy as np
>>> before = np.array([[1, 1, 0, 2, 2]])
>>> after = np.array([[1, 1, 1, 1, 1]])
>>> no_spots = np.zeros((0, 3))
>>> changes = compare_versions(Snapshot(before, no_spots, {}), Snapshot(after, no_spots, {}))
>>> changes.cells_merged, changes.summary()
(((1, (1, 2)),), '2 cells merged into 1')
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from overnight.errors import AnnotationError, StorageError
from overnight.review.annotation import Annotation, annotation_versions, load_annotation
from overnight.storage.base import ObjectStore

logger = logging.getLogger(__name__)

#: Share of a cell (0–1) that must lie in another for the two to count as the same cell.
MATCH_SHARE = 0.5
#: Particle positions are compared at this precision (decimals of a pixel).
POSITION_DECIMALS = 2


@dataclass(frozen=True)
class Snapshot:
    """One state of an image's cells and particles.

    Attributes
    ----------
    labels : ndarray of shape (Y, X), integer
        Cell label image, 0 = background.
    spots : ndarray of shape (N, 3), float
        Particles: ``y_px``, ``x_px``, ``multiplicity``.
    cell_types : mapping of int to str
        Cell id → type name (cells without a type are absent).
    """

    labels: np.ndarray
    spots: np.ndarray
    cell_types: Mapping[int, str]


class AnnotationChanges(BaseModel):
    """What changed between two snapshots; cell ids are those of the snapshot named.

    ``cells_merged`` lists (later id, earlier ids joined into it); ``cells_split`` lists
    (earlier id, later ids it was cut into). Particle fields count spots, not particles.
    """

    model_config = ConfigDict(frozen=True)

    cells_added: tuple[int, ...] = ()
    cells_removed: tuple[int, ...] = ()
    cells_merged: tuple[tuple[int, tuple[int, ...]], ...] = ()
    cells_split: tuple[tuple[int, tuple[int, ...]], ...] = ()
    cells_reshaped: tuple[int, ...] = ()
    cell_types_changed: tuple[int, ...] = ()
    spots_added: int = 0
    spots_removed: int = 0
    multiplicity_changed: int = 0
    particle_change: int = 0

    @property
    def empty(self) -> bool:
        """True when the two snapshots hold the same cells, types and particles."""
        return self == AnnotationChanges()

    @property
    def changed_cells(self) -> tuple[int, ...]:
        """Ids of the later snapshot's cells that changed, ascending (what the editor outlines).

        Added, merged (the joined cell), split (its parts), reshaped and retyped cells; a removed
        cell is not in the later snapshot and is not listed.
        """
        ids = set(self.cells_added) | set(self.cells_reshaped) | set(self.cell_types_changed)
        ids.update(later for later, _ in self.cells_merged)
        ids.update(part for _, parts in self.cells_split for part in parts)
        return tuple(sorted(ids))

    def summary(self) -> str:
        """One line for people, e.g. ``"1 cell removed, 2 cells merged into 1"``."""
        joined = sum(len(olds) for _, olds in self.cells_merged)
        parts = sum(len(news) for _, news in self.cells_split)
        counted = [
            (len(self.cells_added), "cell", " added"),
            (len(self.cells_removed), "cell", " removed"),
            (joined, "cell", f" merged into {len(self.cells_merged)}"),
            (len(self.cells_split), "cell", f" split into {parts}"),
            (len(self.cells_reshaped), "cell", " reshaped"),
            (len(self.cell_types_changed), "cell type", " changed"),
            (self.spots_added, "particle spot", " added"),
            (self.spots_removed, "particle spot", " removed"),
            (self.multiplicity_changed, "spot multiplicity", " changed"),
        ]
        text = [_plural(count, word) + tail for count, word, tail in counted if count]
        return ", ".join(text) or "no change"


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('ity') else word + 's'}"


def _overlaps(
    before: np.ndarray, after: np.ndarray
) -> tuple[dict[int, int], dict[int, int], dict[tuple[int, int], int], set[int]]:
    """Areas and pairwise overlaps (px) of the cells that any changed pixel touches.

    Returns the earlier areas, the later areas, the overlaps ``(earlier, later) → px`` and the
    ids involved. A cell with no changed pixel keeps its id and all its pixels, so only the
    involved cells (and their partners, which are involved too) need counting.
    """
    old, new = before.ravel(), after.ravel()
    changed = old != new
    involved = set(np.unique(old[changed]).tolist()) | set(np.unique(new[changed]).tolist())
    involved.discard(0)
    if not involved:
        return {}, {}, {}, set()
    ids = np.fromiter(involved, np.int64)
    region = np.isin(old, ids) | np.isin(new, ids)
    old_in, new_in = old[region].astype(np.int64), new[region].astype(np.int64)
    areas_old = dict(zip(*(v.tolist() for v in np.unique(old_in, return_counts=True)), strict=True))
    areas_new = dict(zip(*(v.tolist() for v in np.unique(new_in, return_counts=True)), strict=True))
    both = (old_in > 0) & (new_in > 0)
    span = int(new_in.max(initial=0)) + 1  # one int64 key per (earlier, later) pair
    keys, counts = np.unique(old_in[both] * span + new_in[both], return_counts=True)
    overlap = {
        (k // span, k % span): c for k, c in zip(keys.tolist(), counts.tolist(), strict=True)
    }
    areas_old.pop(0, None)
    areas_new.pop(0, None)
    return areas_old, areas_new, overlap, involved


def _cell_changes(
    before: np.ndarray, after: np.ndarray
) -> tuple[dict[str, tuple[object, ...]], dict[int, int], set[int]]:
    """The cell fields of :class:`AnnotationChanges`, matches and the changed cells' ids.

    The matches pair the changed cells matched one-to-one (earlier → later id); a cell whose
    id is not among the changed ones is unchanged.
    """
    areas_old, areas_new, overlap, involved = _overlaps(before, after)
    covered_old: Counter[int] = Counter()
    covered_new: Counter[int] = Counter()
    parents: dict[int, list[int]] = {}  # later cell → earlier cells mostly inside it
    children: dict[int, list[int]] = {}  # earlier cell → later cells mostly inside it
    for (o, n), px in overlap.items():
        covered_old[o] += px
        covered_new[n] += px
        if px >= MATCH_SHARE * areas_old[o]:
            parents.setdefault(n, []).append(o)
        if px >= MATCH_SHARE * areas_new[n]:
            children.setdefault(o, []).append(n)
    removed = sorted(o for o, a in areas_old.items() if covered_old[o] < MATCH_SHARE * a)
    added = sorted(n for n, a in areas_new.items() if covered_new[n] < MATCH_SHARE * a)
    merged = {n: sorted(olds) for n, olds in parents.items() if len(olds) > 1}
    split = {o: sorted(news) for o, news in children.items() if len(news) > 1}
    in_merge = {o for olds in merged.values() for o in olds}
    in_split = {n for news in split.values() for n in news}
    matches: dict[int, int] = {}
    reshaped = []
    for o in sorted(areas_old):
        if o in removed or o in in_merge or o in split:
            continue
        partners = [n for n in children.get(o, []) if n not in merged and n not in in_split]
        news = [n for n in partners if n not in added and o in parents.get(n, [])]
        if len(news) == 1:
            n = news[0]
            matches[o] = n
            if not overlap[(o, n)] == areas_old[o] == areas_new[n]:
                reshaped.append(n)
    fields: dict[str, tuple[object, ...]] = {
        "cells_added": tuple(added),
        "cells_removed": tuple(removed),
        "cells_merged": tuple((n, tuple(olds)) for n, olds in sorted(merged.items())),
        "cells_split": tuple((o, tuple(news)) for o, news in sorted(split.items())),
        "cells_reshaped": tuple(reshaped),
    }
    return fields, matches, involved


def _position_keys(spots: np.ndarray) -> Iterator[tuple[float, float, int]]:
    for y, x, multiplicity in np.asarray(spots, np.float64).reshape(-1, 3).tolist():
        yield round(y, POSITION_DECIMALS), round(x, POSITION_DECIMALS), int(multiplicity)


def _spot_changes(before: np.ndarray, after: np.ndarray) -> dict[str, int]:
    """Spots added, removed and with another multiplicity, matched by position."""
    old, new = Counter(_position_keys(before)), Counter(_position_keys(after))
    gone: Counter[tuple[float, float]] = Counter()  # unmatched spots by position
    came: Counter[tuple[float, float]] = Counter()
    for (y, x, _), count in (old - new).items():  # exact matches cancel out
        gone[(y, x)] += count
    for (y, x, _), count in (new - old).items():
        came[(y, x)] += count
    retold = sum((gone & came).values())  # same place, another multiplicity
    particles_old = sum(m * c for (_, _, m), c in old.items())
    particles_new = sum(m * c for (_, _, m), c in new.items())
    return {
        "spots_added": sum(came.values()) - retold,
        "spots_removed": sum(gone.values()) - retold,
        "multiplicity_changed": retold,
        "particle_change": particles_new - particles_old,
    }


def compare_versions(before: Snapshot, after: Snapshot) -> AnnotationChanges:
    """What changed from ``before`` to ``after`` (see the module's rules).

    Raises
    ------
    AnnotationError
        When the two label images differ in shape.
    """
    if before.labels.shape != after.labels.shape:
        raise AnnotationError(
            f"label images should have the same shape but are {before.labels.shape} "
            f"and {after.labels.shape}"
        )
    cells, matches, involved = _cell_changes(before.labels, after.labels)
    typed = (set(before.cell_types) | set(after.cell_types)) - involved  # unchanged cells
    matches.update({cell: cell for cell in typed})
    retyped = sorted(
        n for o, n in matches.items() if before.cell_types.get(o, "") != after.cell_types.get(n, "")
    )
    return AnnotationChanges(
        **cells,
        cell_types_changed=tuple(retyped),
        **_spot_changes(before.spots, after.spots),
    )


def version_changes(
    store: ObjectStore, image_prefix: str, origin: Snapshot
) -> dict[int, AnnotationChanges]:
    """Each stored version's changes from its parent (``origin``, the model's result, for v1).

    Every version is read once (a version's parent is always the version before it). A version
    whose files cannot be read, or whose parent's cannot, is left out and logged.
    """
    out: dict[int, AnnotationChanges] = {}
    previous: dict[int | None, Snapshot] = {None: origin}
    for version in annotation_versions(store, image_prefix):
        try:
            annotation = load_annotation(store, image_prefix, version)
        except StorageError as err:
            logger.warning(
                "annotation v%d of %s left out of the history: %s", version, image_prefix, err
            )
            annotation = None
        if annotation is None:
            previous = {}
            continue
        current = snapshot_of(annotation)
        parent = previous.get(annotation.parent_version)
        if parent is not None:
            out[version] = compare_versions(parent, current)
        previous = {version: current}
    return out


def snapshot_of(annotation: Annotation) -> Snapshot:
    """The cells and particles of a stored annotation version."""
    return Snapshot(annotation.labels, annotation.spots, annotation.cell_types)
