"""CZI scenes of different sizes: every scene is an image, read with its own shape."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from overnight.errors import InvalidImageError
from overnight.imaging.reader import image_parts, read_stack
from overnight.imaging.vendor import read_vendor_info
from overnight.imaging.zeiss import _scene_box, czi_scene_layouts

TWO_SIZES = Path(__file__).parents[1] / "data" / "vendor" / "two_scenes_different_sizes.czi"
#: (Y, X) of each scene, as make_two_scenes_czi.py wrote them.
SHAPES = [(40, 64), (56, 48)]
needs_czi = pytest.mark.skipif(
    importlib.util.find_spec("aicspylibczi") is None, reason="needs overnight[formats]"
)


def _expected(scene: int, timepoint: int) -> np.ndarray:
    """The ZCYX planes make_two_scenes_czi.py wrote for one scene and timepoint."""
    h, w = SHAPES[scene]
    y, x = np.mgrid[:h, :w]
    planes = [1000 * scene + 100 * c + 10 * timepoint + (y + x) % 7 for c in range(2)]
    return np.stack(planes)[np.newaxis].astype(np.uint16)


@needs_czi
def test_each_scene_is_an_image_per_timepoint() -> None:
    suffixes = [p.key_suffix() for p in image_parts(TWO_SIZES)]
    assert suffixes == ["#s00t000", "#s00t001", "#s01t000", "#s01t001"]
    assert read_vendor_info(TWO_SIZES).shape_zcyx == (1, 2, 40, 64), "the first scene"


@needs_czi
def test_each_scene_is_read_with_its_own_shape_and_pixels() -> None:
    for scene in range(2):
        for timepoint in range(2):
            stack = read_stack(TWO_SIZES, scene=scene, timepoint=timepoint, channels_required=2)
            np.testing.assert_array_equal(stack.data, _expected(scene, timepoint))
            assert stack.channel_names == ("DAPI", "GFP")
            assert stack.pixel_size_um == pytest.approx(0.5)
            assert (stack.metadata["scene"], stack.metadata["n_scenes"]) == (scene, 2)
    with pytest.raises(InvalidImageError, match=r"has 2 scenes"):
        read_stack(TWO_SIZES, timepoint=0)
    with pytest.raises(InvalidImageError, match=r"scene 2 is out of range 0\.\.1"):
        read_stack(TWO_SIZES, scene=2, timepoint=0)


def test_layouts_of_same_sized_groups_become_one_per_scene() -> None:
    small = {"S": (0, 2), "T": (0, 3), "Y": (0, 40), "X": (0, 64)}
    large = {"S": (2, 3), "T": (0, 1), "Y": (0, 56), "X": (0, 48)}
    scenes = czi_scene_layouts("a.czi", [large, small])  # aicspylibczi's order is not relied on
    assert [(d["S"], d["T"], d["Y"]) for d in scenes] == [
        ((0, 1), (0, 3), (0, 40)),
        ((1, 2), (0, 3), (0, 40)),
        ((2, 3), (0, 1), (0, 56)),
    ]
    assert czi_scene_layouts("a.czi", [{"Y": (0, 9), "X": (0, 9)}]) == [{"Y": (0, 9), "X": (0, 9)}]


def test_layouts_that_overlap_or_leave_a_gap_are_refused() -> None:
    with pytest.raises(InvalidImageError, match=r"a\.czi.*scene 1 has two layouts"):
        czi_scene_layouts("a.czi", [{"S": (0, 2)}, {"S": (1, 3)}])
    with pytest.raises(InvalidImageError, match=r"scenes \[0, 2\] are not contiguous"):
        czi_scene_layouts("a.czi", [{"S": (0, 1)}, {"S": (2, 3)}])


def test_scenes_of_different_sizes_that_overlap_in_the_plane_are_refused() -> None:
    boxes = {0: (0, 0, 64, 40), 1: (30, 10, 48, 56)}  # x, y, w, h: the second starts inside
    stub = SimpleNamespace(
        get_scene_bounding_box=lambda s: SimpleNamespace(**dict(zip("xywh", boxes[s], strict=True)))
    )
    scenes = [{"S": (0, 1), "Y": (0, 40), "X": (0, 64)}, {"S": (1, 2), "Y": (0, 56), "X": (0, 48)}]
    with pytest.raises(InvalidImageError, match=r"scenes 1 and 0 differ in size and overlap"):
        _scene_box(stub, "a.czi", scenes, 1)
    boxes[1] = (200, 0, 48, 56)
    assert _scene_box(stub, "a.czi", scenes, 1) == (200, 0, 48, 56)
