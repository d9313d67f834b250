"""Reading microscopy images into the pipeline's ``ZCYX`` :class:`ImageStack`.

``read_stack`` checks a file's header against :class:`ReadLimits`, memory-maps what it can and
normalises the axes once; ``read_tile`` reads a Y/X window of files larger than RAM;
``find_images`` / ``require_images`` list the TIFFs of a folder.
"""

from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration
from overnight.imaging.files import (
    IMAGE_EXTENSIONS,
    find_images,
    image_id_from_name,
    is_image_name,
    require_images,
)
from overnight.imaging.header import ImageInfo, read_info
from overnight.imaging.limits import DEFAULT_LIMITS, SUPPORTED_DTYPES, ReadLimits
from overnight.imaging.reader import read_stack, read_tile
from overnight.imaging.stack import PIPELINE_AXES, ImageStack

__all__ = [
    "DEFAULT_LIMITS",
    "IMAGE_EXTENSIONS",
    "PIPELINE_AXES",
    "SUPPORTED_DTYPES",
    "Calibration",
    "ImageInfo",
    "ImageStack",
    "ReadLimits",
    "find_images",
    "image_id_from_name",
    "is_image_name",
    "read_info",
    "read_stack",
    "read_tile",
    "require_images",
    "to_zcyx",
]
