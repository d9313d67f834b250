"""Finding image files in a folder, and their ``image_id``: the file name less its extension."""

from __future__ import annotations

from pathlib import Path

from overnight.errors import NoImagesError

#: Image file extensions, longest first so ``.ome.tif`` wins over ``.tif``; any case matches.
IMAGE_EXTENSIONS: tuple[str, ...] = (".ome.tiff", ".ome.tif", ".tiff", ".tif")


def is_image_name(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`IMAGE_EXTENSIONS` (any case) and is not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def image_id_from_name(name: str) -> str:
    """Return the file name without ``.tif``, ``.tiff``, ``.ome.tif`` or ``.ome.tiff`` (any case).

    Examples
    --------
    >>> image_id_from_name("field_007.OME.TIF")
    'field_007'
    >>> image_id_from_name("scan.tiff")
    'scan'
    """
    lower = name.lower()
    for extension in IMAGE_EXTENSIONS:
        if lower.endswith(extension):
            return name[: -len(extension)]
    return name


def find_images(folder: Path) -> list[Path]:
    """Every TIFF under ``folder`` (recursive), sorted, skipping hidden files and folders.

    Parameters
    ----------
    folder : Path
        Folder to search. Nothing inside it is special: pass the folder that holds the images.

    Returns
    -------
    list of Path
        Files whose names end in ``.tif``, ``.tiff``, ``.ome.tif`` or ``.ome.tiff`` (any case),
        sorted by path; names starting with ``.`` (files or folders) are skipped.
    """
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and is_image_name(path.name):
            found.append(path)
    return sorted(found)


def require_images(folder: Path) -> list[Path]:
    """:func:`find_images`, raising when there is nothing to analyse.

    Raises
    ------
    NoImagesError
        When ``folder`` is missing, not a folder, or holds no TIFF images.
    """
    if not folder.is_dir():
        raise NoImagesError(f"{folder} is not a folder; give the folder that holds the images")
    images = find_images(folder)
    if not images:
        raise NoImagesError(f"no TIFF images (*.tif, *.tiff, *.ome.tif) found in {folder}")
    return images
