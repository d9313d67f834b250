"""The correction editor in a real Chromium: cells and particles edited, saved, reloaded, refused.

The pointer is placed on image pixels through the stage's on-screen box, so the test clicks
where a reviewer would; which pixels to click comes from the served result's own files.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from playwright.sync_api import expect
from scipy import ndimage

from fixtures_editor import screen_point

pytestmark = pytest.mark.browser


def _sign_in(page, served, name: str = "Ana Lab") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{served.base_url}/login?next=/datasets/run1")
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", served.token)
    page.click("button.primary")
    page.wait_for_url(f"{served.base_url}/datasets/run1")


def _click(page, y: float, x: float) -> None:  # type: ignore[no-untyped-def]
    page.mouse.click(*screen_point(page, y, x))


def _totals(page) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    data = page.locator("#edit-totals")
    return int(data.get_attribute("data-cells")), int(data.get_attribute("data-particles"))


def _wait_totals(page, cells: int, particles: int) -> None:  # type: ignore[no-untyped-def]
    totals = page.locator("#edit-totals")
    expect(totals).to_have_attribute("data-cells", str(cells), timeout=10_000)
    expect(totals).to_have_attribute("data-particles", str(particles), timeout=10_000)


def _open_editor(page, served, image_id: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    page.goto(f"{served.base_url}/datasets/run1/images/{image_id}")
    page.locator("#viewer").focus()
    page.keyboard.press("e")
    page.wait_for_selector("#edit-tools:not([hidden])")
    expect(page.locator("#edit-totals")).to_have_attribute("data-cells", re.compile(r"^\d+$"))
    return _totals(page)


def _inside(labels: np.ndarray, cell_id: int) -> tuple[int, int]:
    """The pixel of ``cell_id`` farthest from its edge."""
    depth = ndimage.distance_transform_edt(np.pad(labels == cell_id, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), labels.shape)
    return int(y), int(x)


def _free_square(labels: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of a ``side``² square of background, away from the border."""
    busy = ndimage.maximum_filter((labels > 0).astype(np.uint8), size=side + 4)
    free = np.argwhere(busy[8:-8, 8:-8] == 0) + 8
    assert len(free), "the test image should have some empty glass"
    y, x = free[len(free) // 2]
    return int(y) - side // 2, int(x) - side // 2


def _cells_by_size(labels: np.ndarray) -> list[int]:
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    return [int(i) for i in ids[np.argsort(sizes)[::-1]]]


def test_correct_cells_and_particles_save_and_reload(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[0]
    labels = tifffile.imread(served.dataset_dir / image_id / "labels.tif")
    pnps = pd.read_csv(served.dataset_dir / image_id / "pnps.csv")
    _sign_in(page, served)
    cells, particles = _open_editor(page, served, image_id)
    assert cells == len(np.unique(labels)) - 1
    assert page.inner_text("#edit-state") == "model result"

    big, second, third, fourth, *rest = _cells_by_size(labels)
    assert rest, "the test image should have at least five cells"
    page.keyboard.press("x")  # delete
    _click(page, *_inside(labels, fourth))
    _wait_totals(page, cells - 1, particles)
    assert page.inner_text("#edit-state").startswith("edited (unsaved)")

    page.keyboard.press("m")  # merge two
    _click(page, *_inside(labels, second))
    _click(page, *_inside(labels, third))
    _wait_totals(page, cells - 2, particles)

    rows, cols = np.nonzero(labels == big)  # split along a line across the largest cell
    y_mid = int(np.median(rows))
    on_row = cols[rows == y_mid]
    page.keyboard.press("s")
    _click(page, y_mid, max(int(on_row.min()) - 1, 0))
    _click(page, y_mid, min(int(on_row.max()) + 1, labels.shape[1] - 1))
    page.keyboard.press("Enter")
    _wait_totals(page, cells - 1, particles)

    y0, x0 = _free_square(labels, 10)  # draw a missing cell as a polygon
    page.keyboard.press("d")
    for y, x in ((y0, x0), (y0, x0 + 10), (y0 + 10, x0 + 10), (y0 + 10, x0)):
        _click(page, y, x)
    page.keyboard.press("Enter")
    _wait_totals(page, cells, particles)

    page.keyboard.press("t")  # give a cell another type
    page.fill("#edit-type", "macrophage")
    page.locator("#viewer").focus()
    _click(page, *_inside(labels, rest[0]))
    expect(page.locator("#edit-state")).to_contain_text("5 changes")

    page.keyboard.press("i")  # add a particle on the new cell, then undo and redo it
    _click(page, y0 + 5, x0 + 5)
    _wait_totals(page, cells, particles + 1)
    expect(page.locator("#edit-marks")).to_be_visible()
    expect(page.locator("#edit-spots circle")).to_have_count(len(pnps) + 1)
    page.keyboard.press("z")
    _wait_totals(page, cells, particles)
    page.keyboard.press("y")
    _wait_totals(page, cells, particles + 1)

    spot = pnps.iloc[0]  # remove a particle the model found
    page.keyboard.press("l")
    _click(page, float(spot["y"]), float(spot["x"]))
    _wait_totals(page, cells, particles + 1 - int(spot["multiplicity"]))

    page.keyboard.press("w")  # save
    expect(page.locator("#edit-status")).to_contain_text("saved as version 1")
    assert page.inner_text("#edit-state") == "saved v1"
    stored = served.dataset_dir / image_id / "annotation" / "v0001"
    record = json.loads((stored / "annotation.json").read_text())
    assert record["author"] == "Ana Lab" and record["cell_count"] == cells
    assert record["cell_types"][str(rest[0])] == "macrophage"
    saved = tifffile.imread(stored / "labels.tif")
    assert fourth not in saved and third not in saved

    page.reload()
    assert "corrected v1" in page.inner_text("#corrected-counts")
    page.locator("#viewer").focus()
    page.keyboard.press("e")
    _wait_totals(page, cells, particles + 1 - int(spot["multiplicity"]))
    assert page.inner_text("#edit-state") == "saved v1"


def test_brush_and_multiplicity(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[2]
    labels = tifffile.imread(served.dataset_dir / image_id / "labels.tif")
    pnps = pd.read_csv(served.dataset_dir / image_id / "pnps.csv")
    cells, particles = _open_editor(page, served, image_id)
    y0, x0 = _free_square(labels, 10)
    page.keyboard.press("b")
    page.mouse.move(*screen_point(page, y0 + 5, x0 + 2))
    page.mouse.down()
    page.mouse.move(*screen_point(page, y0 + 5, x0 + 8), steps=5)
    page.mouse.up()
    _wait_totals(page, cells + 1, particles)
    spot = pnps.iloc[0]
    page.keyboard.press("g")
    page.fill("#edit-multiplicity", "4")
    _click(page, float(spot["y"]), float(spot["x"]))
    _wait_totals(page, cells + 1, particles + 4 - int(spot["multiplicity"]))


def test_saving_without_the_token_is_refused(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[1]
    labels = tifffile.imread(served.dataset_dir / image_id / "labels.tif")
    cells, particles = _open_editor(page, served, image_id)
    page.keyboard.press("x")
    _click(page, *_inside(labels, _cells_by_size(labels)[0]))
    _wait_totals(page, cells - 1, particles)
    page.keyboard.press("w")
    expect(page.locator("#edit-status")).to_contain_text("not saved")
    assert "sign in" in page.inner_text("#edit-status")
    assert page.inner_text("#edit-state").startswith("edited (unsaved)")
    assert not (served.dataset_dir / image_id / "annotation").exists()
