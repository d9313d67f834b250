"""Reading microscopy images into the pipeline's ``ZCYX`` :class:`ImageStack`.

``read_stack`` checks a file's header against :class:`ReadLimits`, memory-maps what it can and
normalises the axes once; ``read_tile`` reads a Y/X window of files larger than RAM;
``find_images`` / ``require_images`` list the TIFFs of a folder. Zeiss ``.czi``, Nikon ``.nd2``
(``vendor.py``) and OME-Zarr folders (``zarr_store.py``) are read by the same ``read_stack``
with the optional extra ``overnight[formats]``.
"""

from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration
from overnight.imaging.files import (
    IMAGE_EXTENSIONS,
    FolderScan,
    IgnoredFile,
    find_images,
    image_id_for,
    image_id_from_name,
    is_image_name,
    relative_stem_of,
    require_images,
    require_scan,
    scan_folder,
)
from overnight.imaging.header import ImageInfo, read_info
from overnight.imaging.limits import DEFAULT_LIMITS, SUPPORTED_DTYPES, ReadLimits
from overnight.imaging.reader import read_stack, read_tile
from overnight.imaging.stack import PIPELINE_AXES, ImageStack
from overnight.imaging.vendor import VENDOR_EXTENSIONS, VendorInfo, read_vendor_info
from overnight.imaging.zarr_store import ZARR_EXTENSIONS, open_zarr

__all__ = [
    "DEFAULT_LIMITS",
    "IMAGE_EXTENSIONS",
    "PIPELINE_AXES",
    "SUPPORTED_DTYPES",
    "VENDOR_EXTENSIONS",
    "ZARR_EXTENSIONS",
    "Calibration",
    "ImageInfo",
    "ImageStack",
    "ReadLimits",
    "VendorInfo",
    "FolderScan",
    "IgnoredFile",
    "find_images",
    "image_id_for",
    "image_id_from_name",
    "is_image_name",
    "open_zarr",
    "read_info",
    "read_stack",
    "read_tile",
    "read_vendor_info",
    "relative_stem_of",
    "require_images",
    "require_scan",
    "scan_folder",
    "to_zcyx",
]
