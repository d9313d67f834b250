"""The QC pages in a real Chromium: filter, open, review by keyboard and mouse, see statistics."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser


def _sign_in(page, served) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{served.base_url}/login?next=/datasets/run1")
    page.fill("input[name=name]", "Ana Lab")
    page.fill("input[name=token]", served.token)
    page.click("button.primary")
    page.wait_for_url(f"{served.base_url}/datasets/run1")


def _all_cells(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.inner_text('#type-stats tr[data-type="all cells"] .n-cells'))


def test_filter_open_reject_reload_and_statistics(page, served) -> None:  # type: ignore[no-untyped-def]
    ids = served.image_ids()
    rux = [image_id for n, image_id in enumerate(ids) if n % 2]
    page.goto(f"{served.base_url}/datasets/run1/stats")
    total_cells = _all_cells(page)

    _sign_in(page, served)
    page.goto(served.base_url)
    page.click('a[href="/datasets/run1"] >> nth=0')
    page.select_option('select[name="f.drug"]', "rux")
    page.click("form.filters button.primary")
    page.wait_for_url(re.compile(r"f\.drug=rux"))
    shown = page.locator("#images tbody tr a.strong").all_inner_texts()
    assert shown == rux

    target = rux[0]
    page.click(f"text={target}")
    page.wait_for_url(re.compile(rf"/images/{target}\?f\.drug=rux"))
    assert page.inner_text("#verdict-badge") == "unreviewed"
    page.fill("#comment", "cells out of focus")
    page.click("button.reject")
    page.wait_for_url(
        re.compile(rf"/images/{rux[1]}\?f\.drug=rux")
    )  # advanced to the next rux image

    page.goto(f"{served.base_url}/datasets/run1/images/{target}")
    page.reload()
    assert page.inner_text("#verdict-badge") == "rejected"
    assert "cells out of focus" in page.inner_text("#verdict-current")
    assert "Ana Lab" in page.inner_text("#verdict-current")
    stored = json.loads((served.dataset_dir / target / "verdict.json").read_text())
    assert (stored["verdict"], stored["comment"], stored["who"]) == (
        "rejected",
        "cells out of focus",
        "Ana Lab",
    )

    n_target = json.loads((served.dataset_dir / target / "result.json").read_text())["summary"][
        "n_cells"
    ]
    page.goto(f"{served.base_url}/datasets/run1/stats")
    assert _all_cells(page) == total_cells - n_target
    assert "1 rejected image left out" in page.inner_text("#stats-scope")
    page.click("#toggle-rejected")
    page.wait_for_url(re.compile(r"all=1"))
    assert _all_cells(page) == total_cells
    assert page.locator("img[alt^='histogram']").first.evaluate("img => img.naturalWidth") > 0


def test_keyboard_review_and_navigation(page, served) -> None:  # type: ignore[no-untyped-def]
    ids = served.image_ids()[3:]  # the other browser tests review the first ones
    _sign_in(page, served)
    page.goto(f"{served.base_url}/datasets/run1/images/{ids[0]}")
    page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/images/{ids[1]}$"))
    page.keyboard.press("k")
    page.wait_for_url(re.compile(rf"/images/{ids[0]}$"))
    page.keyboard.press("c")
    page.keyboard.type("fine")
    page.keyboard.press("Escape")
    page.keyboard.press("a")  # accept, then on to the next image
    page.wait_for_url(re.compile(rf"/images/{ids[1]}$"))
    page.keyboard.press("f")
    page.wait_for_url(re.compile(rf"/images/{ids[2]}$"))
    verdicts = {
        i: json.loads((served.dataset_dir / i / "verdict.json").read_text()) for i in ids[:2]
    }
    assert (verdicts[ids[0]]["verdict"], verdicts[ids[0]]["comment"]) == ("accepted", "fine")
    assert verdicts[ids[1]]["verdict"] == "flagged"
    page.goto(f"{served.base_url}/datasets/run1?verdict=unreviewed")
    unreviewed = [
        i for i in served.image_ids() if not (served.dataset_dir / i / "verdict.json").exists()
    ]
    assert page.locator("#images tbody tr a.strong").all_inner_texts() == unreviewed


def test_viewer_zooms_toggles_layers_and_highlights_cells(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[0]
    page.goto(f"{served.base_url}/datasets/run1/images/{image_id}")
    page.wait_for_load_state("networkidle")
    assert page.locator("img.channel").count() == 2
    assert page.locator("img.channel").first.evaluate("img => img.naturalWidth") == 256
    before = page.eval_on_selector("#stage-live", "el => el.style.transform")
    page.click("#zoom-in")
    assert page.eval_on_selector("#stage-live", "el => el.style.transform") != before
    page.keyboard.press("o")
    assert page.locator('g[data-layer="outlines"]').is_hidden()
    page.keyboard.press("o")
    page.click("#cells tbody tr >> nth=1")
    cell_id = page.get_attribute("#cells tbody tr >> nth=1", "data-cell")
    assert page.locator(f'path.cell.highlight[data-cell="{cell_id}"]').count() == 1
    page.keyboard.press("q")
    page.wait_for_function("() => document.getElementById('qc-img').naturalWidth > 0")
    assert page.locator("#stage-live").is_hidden()


def test_metadata_markup_shows_as_text(page, served) -> None:  # type: ignore[no-untyped-def]
    image_id = served.image_ids()[2]
    page.goto(f"{served.base_url}/datasets/run1")
    assert "<script>window.__xss = 1</script>" in page.inner_text("#images")
    page.goto(f"{served.base_url}/datasets/run1/images/{image_id}")
    page.wait_for_load_state("networkidle")
    assert "<script>window.__xss = 1</script>" in page.inner_text("aside")
    assert page.evaluate("() => window.__xss") is None
