"""A hostile dataset folder: every way a file can be found and still be lost (issue 13).

Shared by the embedded-run, queue and watcher tests (imported through ``sys.path`` like
``fixtures_redis``): each runner must analyse or list with a reason every entry named here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Entries that hold a readable copy of the good image (relative to the dataset folder).
READABLE = (
    "drug-rux/X.tif",
    "drug-placebo/X.tif",
    "summary.csv.tif",
    "dataset.json.tif",
    "failures.json.tif",
    "cellule é 1.tif",
    "a.ome.tif",
    "a.tif",  # same id as a.ome.tif: listed as failed, with the clash
    "folder.tif/inner.tif",
)
#: Entries that can never be read, each a folder or a link.
UNREADABLE = ("dangling.tif", "folder.tif")
#: A symlink to a good image outside the dataset folder.
OUTSIDE = "outside.tif"


def write_adversarial_folder(root: Path, image: Path, outside_dir: Path) -> list[str]:
    """Fill ``root`` with the hostile entries (copies of ``image``); return every one found."""
    for relative in READABLE:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / relative)
    os.symlink(root / "no-such-file.tif", root / "dangling.tif")
    outside_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(image, outside_dir / "elsewhere.tif")
    os.symlink(outside_dir / "elsewhere.tif", root / OUTSIDE)
    return sorted([*READABLE, *UNREADABLE, OUTSIDE])


def found_entries(root: Path) -> list[str]:
    """Every entry under ``root`` named like an image (files, folders, links), not hidden."""
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in [*dirs, *files]:
            if not name.startswith(".") and name.lower().endswith((".tif", ".tiff")):
                found.append((Path(current) / name).relative_to(root).as_posix())
    return sorted(found)
