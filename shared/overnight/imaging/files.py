"""Finding image files in a folder, and their ``image_id``, unique within the dataset.

An image's id is its path relative to the dataset folder, less the image extension. A file
directly in the dataset folder whose name is plain (letters, digits, ``._-``) keeps that name
as its id (``field_007.tif`` → ``field_007``), as it always had. Any other path — in a
sub-folder, with spaces or accents, or named like a dataset-level file — is encoded
reversibly: every byte outside ``[A-Za-z0-9._-]`` becomes ``~HH`` (its UTF-8 hex), so
``drug-rux/X.tif`` → ``drug-rux~2FX`` and ``drug-placebo/X.tif`` → ``drug-placebo~2FX``. An
encoded id always holds a ``~`` and a plain one never does, so two files never share an id.
Ids are ASCII and safe as a storage key segment and in a URL.

A file that holds several scenes / positions or timepoints (``.czi``, ``.nd2``, ``.lif``)
is several images, one per part. A part is named by its file's key with a suffix
(``plate.czi#s01t003``: scene 1, timepoint 3, counted from 0) and its id is the file's id with
``~s01`` / ``~t003`` (``plate~s01~t003``); the suffix names only the axes the file has more
than one of. ``~s`` and ``~t`` never occur in a file's own id (an encoded byte is ``~`` and
two upper-case hex digits), so part ids stay unique and reversible.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from overnight.errors import NoImagesError

#: TIFF image file extensions, longest first so ``.ome.tif`` wins over ``.tif``; any case.
IMAGE_EXTENSIONS: tuple[str, ...] = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
#: Microscope vendor files read through ``overnight[formats]`` (:mod:`overnight.imaging.vendor`).
VENDOR_EXTENSIONS: tuple[str, ...] = (".czi", ".nd2", ".lif")

#: OME-Zarr images are folders (``field.ome.zarr/``); any case.
ZARR_FOLDER_EXTENSIONS: tuple[str, ...] = (".ome.zarr", ".zarr")

#: Separates a file's key from the part it names (``plate.czi#s01t003``).
PART_MARK = "#"
_PART_KEY = re.compile(r"^(?P<file>.+)#(?:s(?P<s>\d+))?(?:t(?P<t>\d+))?$")
_PART_ID = re.compile(r"^(?P<file>.+?)(?:~s(?P<s>\d+))?(?:~t(?P<t>\d+))?$")


@dataclass(frozen=True)
class ImagePart:
    """Which part of a file an image is: scene (or position) and timepoint, from 0.

    ``None`` where the file has one of that axis (nothing to choose). ``n_scenes`` and
    ``n_timepoints`` set the zero padding, so the parts of one file sort in order.
    """

    scene: int | None = None
    timepoint: int | None = None
    n_scenes: int = 1
    n_timepoints: int = 1

    def key_suffix(self) -> str:
        """``#s01t003``-like text added to the file key; empty for a whole file."""
        text = ""
        if self.scene is not None:
            text += f"s{self.scene:0{max(2, len(str(self.n_scenes - 1)))}d}"
        if self.timepoint is not None:
            text += f"t{self.timepoint:0{max(3, len(str(self.n_timepoints - 1)))}d}"
        return f"{PART_MARK}{text}" if text else ""


def file_parts(n_scenes: int, n_timepoints: int) -> list[ImagePart]:
    """Every part of a file with ``n_scenes`` scenes and ``n_timepoints`` timepoints, in order.

    Examples
    --------
    >>> [p.key_suffix() for p in file_parts(1, 2)]
    ['#t000', '#t001']
    >>> file_parts(1, 1)
    [ImagePart(scene=None, timepoint=None, n_scenes=1, n_timepoints=1)]
    """
    scenes: list[int | None] = list(range(n_scenes)) if n_scenes > 1 else [None]
    times: list[int | None] = list(range(n_timepoints)) if n_timepoints > 1 else [None]
    return [ImagePart(s, t, n_scenes, n_timepoints) for s in scenes for t in times]


def split_part_key(key: str) -> tuple[str, int | None, int | None]:
    """``(file key, scene, timepoint)`` of a key that may name a part of a file.

    Only an image file's key followed by a part suffix is a part key; anything else is
    returned whole, with ``None`` for scene and timepoint.

    Examples
    --------
    >>> split_part_key("drug/plate.czi#s01t003")
    ('drug/plate.czi', 1, 3)
    >>> split_part_key("movie.nd2#t002")
    ('movie.nd2', None, 2)
    >>> split_part_key("field.tif")
    ('field.tif', None, None)
    """
    match = _PART_KEY.match(key)
    if match is None or not (match["s"] or match["t"]):
        return key, None, None
    name = match["file"].rsplit("/", 1)[-1]
    if not name.lower().endswith(VENDOR_EXTENSIONS + IMAGE_EXTENSIONS + ZARR_FOLDER_EXTENSIONS):
        return key, None, None
    scene = int(match["s"]) if match["s"] else None
    timepoint = int(match["t"]) if match["t"] else None
    return match["file"], scene, timepoint


def split_part_id(image_id: str) -> tuple[str, int | None, int | None]:
    """``(file id, scene, timepoint)`` of an image id (``plate~s01~t003`` → ``plate``, 1, 3).

    Examples
    --------
    >>> split_part_id("plate~s01~t003")
    ('plate', 1, 3)
    >>> split_part_id("drug-rux~2FX")
    ('drug-rux~2FX', None, None)
    """
    match = _PART_ID.match(image_id)
    if match is None:  # only the empty string
        return image_id, None, None
    return (
        match["file"],
        int(match["s"]) if match["s"] else None,
        int(match["t"]) if match["t"] else None,
    )


def is_image_name(name: str) -> bool:
    """Whether ``name`` is a TIFF or a vendor file (any case) and is not hidden."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS + VENDOR_EXTENSIONS)


def is_zarr_folder_name(name: str) -> bool:
    """Whether a folder named ``name`` is an OME-Zarr image (``.zarr``, ``.ome.zarr``, any case)."""
    return not name.startswith(".") and name.lower().rstrip("/").endswith(ZARR_FOLDER_EXTENSIONS)


def image_id_from_name(name: str) -> str:
    """Return the file name without its image extension (TIFF, vendor or OME-Zarr, any case).

    Examples
    --------
    >>> image_id_from_name("field_007.OME.TIF")
    'field_007'
    >>> image_id_from_name("scan.tiff")
    'scan'
    >>> image_id_from_name("plate_A1.czi")
    'plate_A1'
    >>> image_id_from_name("well_B2.ome.zarr")
    'well_B2'
    """
    lower = name.lower()
    for extension in IMAGE_EXTENSIONS + VENDOR_EXTENSIONS + ZARR_FOLDER_EXTENSIONS:
        if lower.endswith(extension):
            return name[: -len(extension)]
    return name


#: Names of the dataset-level files beside the image folders (``results.layout``): an image
#: id is never one of them (``summary.csv.tif`` gets ``~73ummary.csv``).
RESERVED_IDS: frozenset[str] = frozenset({"summary.csv", "failures.json", "dataset.json"})
#: The escape character of encoded ids; never part of a plain id.
ID_ESCAPE = "~"
#: Longest image id; a longer encoded path is cut and ends in ``~~<hash>``.
MAX_IMAGE_ID_CHARS = 200
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_PLAIN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")


def _escape(text: str) -> str:
    return "".join(f"~{byte:02X}" for byte in text.encode("utf-8"))


def image_id_for(relative: str) -> str:
    """The image id of the file at ``relative`` (``/``-separated, from the dataset folder).

    Examples
    --------
    >>> image_id_for("field_007.ome.tif")
    'field_007'
    >>> image_id_for("drug-rux/X.tif")
    'drug-rux~2FX'
    >>> image_id_for("cellule é 1.tif")
    'cellule~20~C3~A9~201'
    >>> image_id_for("summary.csv.tif")
    '~73ummary.csv'
    >>> image_id_for("drug-rux/movie.nd2#t002")
    'drug-rux~2Fmovie~t002'
    """
    file_key, _, _ = split_part_key(relative)
    if file_key != relative:
        return image_id_for(file_key) + file_key_suffix_as_id(relative[len(file_key) :])
    folder, _, name = relative.strip("/").rpartition("/")
    stem = f"{folder}/{image_id_from_name(name)}" if folder else image_id_from_name(name)
    if _PLAIN_ID.match(stem) and stem not in RESERVED_IDS and len(stem) <= MAX_IMAGE_ID_CHARS:
        return stem
    encoded = "".join(ch if ch in _PLAIN_CHARS else _escape(ch) for ch in stem)
    if ID_ESCAPE not in encoded or encoded.startswith("."):
        encoded = _escape(encoded[0]) + encoded[1:]
    if len(encoded) > MAX_IMAGE_ID_CHARS:  # unique still, no longer reversible
        digest = hashlib.sha256(stem.encode("utf-8")).hexdigest()[:16]
        head = encoded[: MAX_IMAGE_ID_CHARS - 18]
        head = head[: head.rfind("~")] if "~" in head[-2:] else head  # no cut escape
        encoded = f"{head}~~{digest}"
    return encoded


def file_key_suffix_as_id(suffix: str) -> str:
    """A part key's suffix as the id's: ``#s01t003`` → ``~s01~t003``.

    Examples
    --------
    >>> file_key_suffix_as_id("#s01t003")
    '~s01~t003'
    """
    return re.sub(r"([st])", r"~\1", suffix.removeprefix(PART_MARK))


def relative_stem_of(image_id: str) -> str:
    """The relative path (less the image extension) an image id was made from.

    Examples
    --------
    >>> relative_stem_of("drug-rux~2FX")
    'drug-rux/X'
    >>> relative_stem_of(image_id_for("a b/é.tif"))
    'a b/é'
    """
    return _ESCAPED.sub(
        lambda m: bytes.fromhex(m.group(0).replace("~", "")).decode("utf-8", "replace"),
        image_id,
    )


@dataclass(frozen=True)
class IgnoredFile:
    """A file found in a dataset folder that cannot be analysed, and why."""

    relative: str
    reason: str
    #: Whether its id is an analysed image's too: it is then listed under its whole name.
    clash: bool = False

    @property
    def image_id(self) -> str:
        """The id it is listed under: its own, or for a clash its whole name's (``a.tif``)."""
        return image_id_for(f"{self.relative}.tif" if self.clash else self.relative)


@dataclass(frozen=True)
class FolderScan:
    """What a dataset folder holds: the images to analyse and the entries ignored, with why."""

    images: list[Path] = field(default_factory=list)
    ignored: list[IgnoredFile] = field(default_factory=list)


def scan_folder(folder: Path, *, follow_outside: bool = True) -> FolderScan:
    """Every image under ``folder`` and every image-named entry that cannot be one, with why.

    Hidden names (``.`` first, files or folders) are skipped. An OME-Zarr folder
    (``*.zarr``, ``*.ome.zarr``) is one image and is not searched further. An entry named
    like an image is
    ignored, with a reason, when it is a folder, a dangling symlink, a symlink out of
    ``folder`` (unless ``follow_outside``), or when its id equals an earlier file's
    (``a.tif`` and ``a.ome.tif``). Nothing named like an image is dropped without a reason.
    """
    images: list[Path] = []
    ignored: list[IgnoredFile] = []
    real_root = folder.resolve()
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(current)
        zarr_folders = [d for d in dirs if is_zarr_folder_name(d)]
        dirs[:] = [d for d in dirs if d not in zarr_folders]  # an OME-Zarr is one image
        images += [here / d for d in zarr_folders if (here / d).is_dir()]
        for name in sorted([*files, *(d for d in dirs if is_image_name(d))]):
            if not is_image_name(name):
                continue
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink() and not path.exists():
                ignored.append(
                    IgnoredFile(
                        relative,
                        f"{path} is a symlink to {os.readlink(path)}, which does not exist",
                    )
                )
            elif path.is_dir():
                ignored.append(IgnoredFile(relative, f"{path} is a folder, not an image file"))
            elif not path.is_file():
                ignored.append(IgnoredFile(relative, f"{path} is not a regular file"))
            elif not follow_outside and not path.resolve().is_relative_to(real_root):
                ignored.append(
                    IgnoredFile(
                        relative,
                        f"{path} is a symlink to {path.resolve()}, "
                        "outside the dataset folder; copy the file in",
                    )
                )
            else:
                images.append(path)
    images.sort()
    return FolderScan(*_unique_ids(images, folder, ignored))


def _unique_ids(
    images: list[Path], folder: Path, ignored: list[IgnoredFile]
) -> tuple[list[Path], list[IgnoredFile]]:
    """Images whose id no earlier image has; the others join ``ignored`` with the clash."""
    kept: list[Path] = []
    owners: dict[str, Path] = {}
    for path in images:
        image_id = image_id_for(path.relative_to(folder).as_posix())
        if image_id in owners:
            ignored.append(
                IgnoredFile(
                    path.relative_to(folder).as_posix(),
                    f"{path} has the same image id {image_id!r} as {owners[image_id]}; rename one",
                    clash=True,
                )
            )
            continue
        owners[image_id] = path
        kept.append(path)
    return kept, sorted(ignored, key=lambda f: f.relative)


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
    return scan_folder(folder).images


def require_scan(folder: Path) -> FolderScan:
    """:func:`scan_folder`, raising when the folder is missing or holds nothing image-named.

    Raises
    ------
    NoImagesError
        When ``folder`` is missing, not a folder, or holds no TIFF images.
    """
    if not folder.is_dir():
        raise NoImagesError(f"{folder} is not a folder; give the folder that holds the images")
    scan = scan_folder(folder)
    if not scan.images and not scan.ignored:
        raise NoImagesError(f"no TIFF images (*.tif, *.tiff, *.ome.tif) found in {folder}")
    return scan


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
