"""The images one file holds: one per scene (position) and timepoint, from the header only.

Every runner lists a dataset's files through :func:`part_keys` (``overnight run``,
``run_batch``) or :func:`~overnight.jobs.sources.list_source` (the services): a file with
several scenes or timepoints becomes several images, keyed ``plate.czi#s01t003`` (see
:mod:`overnight.imaging.files`). Vendor files: :func:`~overnight.imaging.vendor.vendor_parts`;
TIFFs: :func:`~overnight.imaging.timepoints.tiff_parts`; OME-Zarr: :func:`zarr_parts`.
"""

from __future__ import annotations

from pathlib import Path

from overnight.errors import InvalidImageError
from overnight.imaging.files import IMAGE_EXTENSIONS, ImagePart, file_parts
from overnight.imaging.limits import DEFAULT_LIMITS, ReadLimits
from overnight.imaging.timepoints import tiff_parts
from overnight.imaging.vendor import is_vendor_name, vendor_parts
from overnight.imaging.zarr_store import ZarrImage, is_zarr_name, open_zarr


def image_parts(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> list[ImagePart]:
    """The images a file holds: one per scene (position) and timepoint; one per T of a TIFF or Zarr.

    Only the header is read. A file without scenes or timepoints, and a file whose header
    cannot be read (reading it then fails with the reason), are one image.

    Examples
    --------
    >>> image_parts(Path("missing.czi"))
    [ImagePart(scene=None, timepoint=None, n_scenes=1, n_timepoints=1)]
    """
    try:
        if is_zarr_name(path.name):
            return zarr_parts(open_zarr(path, limits=limits))
        if is_vendor_name(path.name):
            return vendor_parts(path, limits=limits)
    except InvalidImageError:
        pass
    if path.name.lower().endswith(IMAGE_EXTENSIONS) and path.is_file():
        return tiff_parts(path)
    return [ImagePart()]


def zarr_parts(image: ZarrImage) -> list[ImagePart]:
    """One part per timepoint of an opened OME-Zarr image (one part without a T axis)."""
    n_t = int(image.array.shape[image.axes.index("T")]) if "T" in image.axes else 1
    return file_parts(1, n_t)


def part_keys(key: str, path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> list[str]:
    """The image keys of the file at ``key`` (read at ``path``): ``key`` itself, or its parts.

    Examples
    --------
    >>> part_keys("plate/a.tif", Path("a.tif"))
    ['plate/a.tif']
    """
    return [key + part.key_suffix() for part in image_parts(path, limits=limits)]
