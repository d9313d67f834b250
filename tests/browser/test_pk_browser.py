"""The PK page in a real Chromium: the NCA table and the depth x time heatmap load."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.browser

#: Seconds the service may take to answer its health check.
START_TIMEOUT_S = 30.0
TESTS = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    """A module by path (the suite runs in importlib mode), loaded once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _pk_helpers() -> ModuleType:
    """``tests/qc/test_pk_page.py``, for ``make_pk_results`` (it needs ``qc_helpers``)."""
    _load("qc_helpers", TESTS / "qc" / "qc_helpers.py")
    return _load("pk_page_helpers", TESTS / "qc" / "test_pk_page.py")


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"overnight qc-web exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"overnight qc-web did not answer on {base_url} within {START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def pk_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``overnight qc-web --dataset-dir`` over a real ``pk run`` output: (base URL, folder)."""
    results = _pk_helpers().make_pk_results(tmp_path_factory.getbasetemp() / "pk-results")
    port = sys.modules["qc_helpers"].free_port()
    env = {**os.environ, "OVERNIGHT_QC_LISTING_TTL_S": "0", "OVERNIGHT_LOG_LEVEL": "WARNING"}
    overnight = str(Path(sys.executable).with_name("overnight"))
    process = subprocess.Popen(
        [overnight, "qc-web", "--port", str(port), "--dataset-dir", str(results)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, process)
        yield base_url, results
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _loaded(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0"))


def test_pk_page_shows_nca_table_and_heatmap(page, pk_served) -> None:  # type: ignore[no-untyped-def]
    base_url, results = pk_served
    compartments = {
        line.split(",", 1)[0] for line in (results / "nca.csv").read_text().splitlines()[1:]
    }
    page.goto(f"{base_url}/datasets/out/pk")
    assert page.title().startswith("Pharmacokinetics · out")
    rows = page.locator("#nca-table tbody tr")
    shown = [rows.nth(i).get_attribute("data-compartment") for i in range(rows.count())]
    assert sorted(shown) == sorted(compartments)
    assert shown[0] == "stratum_corneum"  # outside in, not by name
    assert page.inner_text("#nca-table thead th[data-column=auc_last] .unit") == "<i>µM</i>·min"
    page.wait_for_function("document.querySelector('#pk-heatmap').complete")
    assert _loaded(page, "#pk-heatmap")
    width = page.eval_on_selector("#pk-heatmap", "img => img.getBoundingClientRect().width")
    assert width > 600  # shown large, not as a thumbnail
    thumbs = page.locator("#pk-timepoints img")
    assert thumbs.count() == 4
    page.wait_for_function(
        "[...document.querySelectorAll('#pk-timepoints img')].every(i => i.complete)"
    )
    assert all(_loaded(page, f"#pk-timepoints figure:nth-child({n}) img") for n in (1, 4))
    if os.environ.get("OVERNIGHT_SCREENSHOT_DIR"):  # a picture of the page for review
        page.screenshot(
            path=str(Path(os.environ["OVERNIGHT_SCREENSHOT_DIR"]) / "pk.png"), full_page=True
        )
