"""labels.tif as written by every runner: an OME-TIFF with physical pixel size and axes YX."""

import importlib.util
import io

import numpy as np
import pytest
import tifffile

from overnight.results.artefacts import labels_tiff_bytes

LABELS = np.zeros((30, 40), np.int32)
LABELS[5:10, 5:12] = 1
LABELS[20:25, 30:38] = 7


def test_labels_read_back_with_plain_tifffile() -> None:
    data = tifffile.imread(io.BytesIO(labels_tiff_bytes(LABELS, 0.325)))
    assert data.shape == (30, 40) and data.dtype == np.uint16
    np.testing.assert_array_equal(data, LABELS)


def test_labels_are_ome_tiff_with_pixel_size_and_yx_axes() -> None:
    with tifffile.TiffFile(io.BytesIO(labels_tiff_bytes(LABELS, 0.325))) as tif:
        assert tif.is_ome
        assert tif.series[0].axes == "YX"
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        x_resolution = tif.pages.first.tags["XResolution"].value
        unit = tif.pages.first.tags["ResolutionUnit"].value
    assert (pixels["SizeX"], pixels["SizeY"], pixels["SizeZ"], pixels["SizeC"]) == (40, 30, 1, 1)
    assert pixels["PhysicalSizeX"] == pytest.approx(0.325)
    assert pixels["PhysicalSizeY"] == pytest.approx(0.325)
    assert pixels["PhysicalSizeXUnit"] == "µm"
    assert unit == 3  # centimetre
    assert 1e4 * x_resolution[1] / x_resolution[0] == pytest.approx(0.325)


def test_large_ids_become_uint32_and_unknown_pixel_size_is_left_out() -> None:
    big = LABELS.copy()
    big[0, 0] = 70_000
    with tifffile.TiffFile(io.BytesIO(labels_tiff_bytes(big))) as tif:
        assert tif.is_ome and tif.series[0].dtype == np.uint32
        assert "PhysicalSizeX" not in tif.ome_metadata
        np.testing.assert_array_equal(tif.asarray(), big)


def test_the_same_labels_give_the_same_bytes() -> None:
    assert labels_tiff_bytes(LABELS, 0.5) == labels_tiff_bytes(LABELS.copy(), 0.5)
    assert labels_tiff_bytes(LABELS, 0.5) != labels_tiff_bytes(LABELS, 0.4)


def test_labels_that_are_not_yx_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels should be YX .* shape \(1, 30, 40\)"):
        labels_tiff_bytes(LABELS[np.newaxis])


@pytest.mark.skipif(
    importlib.util.find_spec("ome_types") is None,
    reason="ome-types (installed with nd2 by the formats extra) is not installed",
)
def test_an_independent_ome_reader_parses_the_metadata() -> None:
    import ome_types

    with tifffile.TiffFile(io.BytesIO(labels_tiff_bytes(LABELS, 0.325))) as tif:
        ome = ome_types.from_xml(tif.ome_metadata)
    pixels = ome.images[0].pixels
    assert ome.images[0].name == "labels"
    assert (pixels.size_x, pixels.size_y, pixels.physical_size_x) == (40, 30, 0.325)
    assert str(pixels.physical_size_x_unit.value) == "µm"
