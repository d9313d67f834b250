import numpy as np
import pytest

from overnight.errors import InvalidImageError
from overnight.imaging.limits import ReadLimits, check_declared_size, check_pixel_type


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", ">u2"])
def test_unsigned_types_are_accepted(dtype: str) -> None:
    check_pixel_type("a.tif", np.dtype(dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32", "int8", "int16", "bool", "complex64"])
def test_other_types_are_refused(dtype: str) -> None:
    with pytest.raises(InvalidImageError) as caught:
        check_pixel_type("a.tif", np.dtype(dtype))
    assert str(caught.value) == (
        f"a.tif: pixel type {np.dtype(dtype).name} is not supported; "
        "expected unsigned integers (uint8/uint16/uint32)"
    )


def test_defaults_admit_real_stacks() -> None:
    limits = ReadLimits()
    check_declared_size("a.tif", (12, 2, 2048, 2048), np.dtype("uint16"), limits, in_memory=True)
    # a 2 GiB stack in memory, and a 20 GiB one memory-mapped
    check_declared_size("a.tif", (16, 2, 8192, 4096), np.dtype("uint16"), limits, in_memory=True)
    check_declared_size("a.tif", (40, 2, 16384, 8192), np.dtype("uint16"), limits, in_memory=False)


def test_each_limit_is_enforced() -> None:
    limits = ReadLimits(max_pixels=100, max_bytes=150, max_in_memory_bytes=120)
    u16 = np.dtype("uint16")
    with pytest.raises(InvalidImageError, match=r"\(10, 11\).*ReadLimits\.max_pixels"):
        check_declared_size("a.tif", (10, 11), u16, limits, in_memory=False)
    with pytest.raises(InvalidImageError, match=r"ReadLimits\.max_bytes"):
        check_declared_size("a.tif", (9, 9), u16, limits, in_memory=False)
    with pytest.raises(InvalidImageError, match=r"ReadLimits\.max_in_memory_bytes"):
        check_declared_size("a.tif", (8, 8), u16, limits, in_memory=True)
    check_declared_size("a.tif", (8, 8), u16, limits, in_memory=False)


def test_limits_are_frozen_and_positive() -> None:
    with pytest.raises(ValueError):
        ReadLimits(max_pixels=0)
    with pytest.raises(ValueError):
        ReadLimits().max_pixels = 5  # type: ignore[misc]
