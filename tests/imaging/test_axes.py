import numpy as np
import pytest

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx


def labelled(shape: tuple[int, ...]) -> np.ndarray:
    """Array whose every element is distinct, so a wrong transpose cannot pass."""
    return np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)


@pytest.mark.parametrize(
    ("axes", "shape", "expected"),
    [
        ("ZCYX", (3, 2, 4, 5), (3, 2, 4, 5)),
        ("CZYX", (2, 3, 4, 5), (3, 2, 4, 5)),
        ("YX", (4, 5), (1, 1, 4, 5)),
        ("CYX", (2, 4, 5), (1, 2, 4, 5)),
        ("ZYX", (3, 4, 5), (3, 1, 4, 5)),
        ("TZCYX", (1, 3, 2, 4, 5), (3, 2, 4, 5)),
        ("YXS", (4, 5, 3), (1, 3, 4, 5)),
        ("QYX", (6, 4, 5), (6, 1, 4, 5)),
        ("IYX", (6, 4, 5), (6, 1, 4, 5)),
        ("ZQCYX", (3, 1, 2, 4, 5), (3, 2, 4, 5)),
        ("zcyx", (3, 2, 4, 5), (3, 2, 4, 5)),
    ],
)
def test_shapes_become_zcyx(axes: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert to_zcyx(labelled(shape), axes, source="a.tif").shape == expected


def test_czyx_values_land_on_the_right_axes() -> None:
    data = labelled((2, 3, 4, 5))
    out = to_zcyx(data, "CZYX", source="a.tif")
    assert out[2, 1, 3, 4] == data[1, 2, 3, 4]
    assert np.shares_memory(out, data)


def test_samples_become_channels() -> None:
    rgb = labelled((4, 5, 3))
    out = to_zcyx(rgb, "YXS", source="a.tif")
    np.testing.assert_array_equal(out[0, 2], rgb[:, :, 2])


def test_channels_and_samples_merge_channel_major() -> None:
    data = labelled((2, 4, 5, 3))  # C Y X S
    out = to_zcyx(data, "CYXS", source="a.tif")
    assert out.shape == (1, 6, 4, 5)
    np.testing.assert_array_equal(out[0, 4], data[1, :, :, 1])


def test_timepoint_is_selected() -> None:
    data = labelled((4, 3, 2, 4, 5))
    out = to_zcyx(data, "TZCYX", source="a.tif", timepoint=2)
    np.testing.assert_array_equal(out, data[2])


def test_several_timepoints_need_a_choice() -> None:
    # issue 13: the message says what to do in the runners, which have no timepoint option
    with pytest.raises(
        InvalidImageError, match=r"a\.tif.*4 timepoints.*its own file.*timepoint=0\.\.3"
    ):
        to_zcyx(labelled((4, 2, 4, 5)), "TCYX", source="a.tif")


def test_timepoint_out_of_range() -> None:
    with pytest.raises(InvalidImageError, match="out of range 0..3"):
        to_zcyx(labelled((4, 2, 4, 5)), "TCYX", source="a.tif", timepoint=4)


@pytest.mark.parametrize(
    ("axes", "shape", "problem"),
    [
        ("ZCYX", (3, 4, 5), "do not match the image shape"),
        ("ZZYX", (3, 2, 4, 5), "name an axis twice"),
        ("ZCY", (3, 2, 4), "lack Y and X"),
        ("QZYX", (2, 3, 4, 5), "cannot place axes 'Q'"),
        ("QIYX", (2, 3, 4, 5), "cannot place axes 'QI'"),
        ("EZYX", (2, 3, 4, 5), "cannot place axes 'E'"),
    ],
)
def test_unplaceable_axes_are_refused(axes: str, shape: tuple[int, ...], problem: str) -> None:
    with pytest.raises(InvalidImageError, match=problem) as caught:
        to_zcyx(labelled(shape), axes, source="odd.tif")
    assert caught.value.source == "odd.tif"


def test_memmap_stays_a_view(tmp_path) -> None:
    path = tmp_path / "raw.bin"
    labelled((2, 3, 4, 5)).tofile(path)
    mapped = np.memmap(path, dtype=np.uint16, mode="r", shape=(2, 3, 4, 5))
    out = to_zcyx(mapped, "CZYX", source="raw.bin")
    assert isinstance(out, np.memmap)
    assert out.shape == (3, 2, 4, 5)
