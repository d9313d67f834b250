"""Earlier correction versions in a real Chromium: listed, viewed read-only, restored."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import tifffile
from playwright.sync_api import expect

from fixtures_editor import screen_point

pytestmark = pytest.mark.browser


def _save(served, image_id: str, body: dict, reviewer: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Save corrections through the API with the token, as a script would."""
    request = urllib.request.Request(
        f"{served.base_url}/datasets/run1/images/{image_id}/annotation",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {served.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Overnight-Reviewer": reviewer,
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _expect_totals(page, cells: int, particles: int) -> None:  # type: ignore[no-untyped-def]
    totals = page.locator("#edit-totals")
    expect(totals).to_have_attribute("data-cells", str(cells), timeout=10_000)
    expect(totals).to_have_attribute("data-particles", str(particles), timeout=10_000)


def test_view_an_earlier_version_and_restore_it(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[3]
    labels = tifffile.imread(served.dataset_dir / image_id / "labels.tif")
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    cell = int(ids[np.argmax(sizes)])
    v1 = _save(served, image_id, {"ops": [{"op": "delete_cell", "cell_id": cell}]}, reviewer="Ana")
    spot = {"op": "add_spot", "y": 5, "x": 5, "multiplicity": 2}
    v2 = _save(served, image_id, {"base_version": 1, "ops": [spot]}, reviewer="Bo")
    assert (v1["version"], v2["version"]) == (1, 2)

    page.goto(f"{served.base_url}/login?next=/datasets/run1/images/{image_id}")
    page.fill("input[name=name]", "Cy Lab")
    page.fill("input[name=token]", served.token)
    page.click("button.primary")
    page.wait_for_url(f"{served.base_url}/datasets/run1/images/{image_id}")
    page.locator("#viewer").focus()
    page.keyboard.press("e")
    _expect_totals(page, v2["cell_count"], v2["particle_count"])
    items = page.locator("#version-list li")
    expect(items).to_have_count(3)  # v2, v1, the model result
    expect(items.nth(0)).to_contain_text("Bo")
    expect(items.nth(0)).to_contain_text("1 particle spot added")
    expect(items.nth(0)).to_contain_text("(latest)")
    expect(items.nth(1)).to_contain_text("Ana")
    expect(items.nth(1)).to_contain_text("1 cell removed")
    expect(items.nth(2)).to_contain_text("model result")

    items.nth(1).locator("button.view-version").click()  # v1, read-only over the image
    expect(page.locator("#edit-state")).to_have_text("viewing v1 (read-only)")
    _expect_totals(page, v1["cell_count"], v1["particle_count"])
    expect(page.locator("#version-view")).to_be_visible()
    expect(page.locator("#edit-tools")).to_be_hidden()
    expect(page.locator("#edit-canvas")).to_be_visible()
    expect(items.nth(1)).to_have_class("viewing")
    page.keyboard.press("x")  # no tool works on an earlier version
    rows, cols = np.nonzero(labels == int(ids[np.argsort(sizes)[-2]]))
    page.mouse.click(*screen_point(page, float(np.median(rows)), float(np.median(cols))))
    page.wait_for_load_state("networkidle")  # a preview, if one was sent, has answered
    expect(page.locator("#edit-state")).to_have_text("viewing v1 (read-only)")
    _expect_totals(page, v1["cell_count"], v1["particle_count"])

    page.click("#version-restore")
    expect(page.locator("#edit-status")).to_contain_text("restored v1 as version 3 by Cy Lab")
    expect(page.locator("#edit-state")).to_have_text("saved v3")
    expect(page.locator("#edit-tools")).to_be_visible()
    _expect_totals(page, v1["cell_count"], v1["particle_count"])
    expect(items).to_have_count(4)
    expect(items.nth(0)).to_contain_text("restored v1: 1 particle spot removed")
    stored = served.dataset_dir / image_id / "annotation"
    record = json.loads((stored / "v0003" / "annotation.json").read_text())
    assert (record["restored_from"], record["author"]) == (1, "Cy Lab")
    saved = tifffile.imread(stored / "v0003" / "labels.tif")
    assert np.array_equal(saved, tifffile.imread(stored / "v0001" / "labels.tif"))

    items.nth(3).locator("button.view-version").click()  # the model result, then back
    expect(page.locator("#edit-state")).to_have_text("viewing the model result (read-only)")
    _expect_totals(page, len(ids), v1["particle_count"])
    page.keyboard.press("Escape")
    expect(page.locator("#edit-state")).to_have_text("saved v3")


_MAGENTA_PIXELS = """() => {
  const canvas = document.getElementById("edit-canvas");
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const found = [];
  for (let p = 0; p < rgba.length / 4; p++) {
    const [r, g, b, a] = rgba.subarray(4 * p, 4 * p + 4);
    if (r === 255 && g === 0 && b === 255 && a) found.push(p);
  }
  return found;
}"""


def test_a_viewed_version_outlines_the_cells_it_changed(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[4]
    labels = tifffile.imread(served.dataset_dir / image_id / "labels.tif")
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    keep, other = (int(i) for i in ids[np.argsort(sizes)[-2:]])
    merge = {"op": "merge_cells", "keep_id": keep, "other_id": other}
    _save(served, image_id, {"ops": [merge]}, reviewer="Ana")
    spot = {"op": "add_spot", "y": 5, "x": 5}
    _save(served, image_id, {"base_version": 1, "ops": [spot]}, reviewer="Bo")

    page.goto(f"{served.base_url}/datasets/run1/images/{image_id}#edit")
    items = page.locator("#version-list li")
    expect(items).to_have_count(3)
    canvas = page.locator("#edit-canvas")
    expect(canvas).to_have_attribute("data-changed", "")  # the latest, editable: no outline
    assert page.evaluate(_MAGENTA_PIXELS) == []

    items.nth(1).locator("button.view-version").click()  # v1 merged two cells
    expect(page.locator("#edit-state")).to_have_text("viewing v1 (read-only)")
    expect(canvas).to_have_attribute("data-changed", str(keep))
    expect(page.locator("#version-changed")).to_be_visible()
    expect(page.locator("#version-changed")).to_contain_text("1 cell changed from the model result")
    marked = np.array(page.evaluate(_MAGENTA_PIXELS))
    merged = np.flatnonzero(np.isin(labels, (keep, other)))
    assert len(marked) >= len(merged) // 2 and np.isin(marked, merged).all()

    items.nth(0).locator("button.view-version").click()  # v2 is the latest: editable again
    expect(page.locator("#edit-state")).to_have_text("saved v2")
    expect(canvas).to_have_attribute("data-changed", "")
    assert page.evaluate(_MAGENTA_PIXELS) == []
