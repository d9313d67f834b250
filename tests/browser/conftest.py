"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, the real app on uvicorn.

The QC service runs as ``overnight qc-web --dataset-dir`` in a subprocess on a free port of
127.0.0.1, over a private copy of real pipeline results (made once per session by
``tests/qc/qc_helpers.py``). Without Chromium the tests skip, and the suite's CI rule turns
that skip into a failure when ``CI`` is set.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Seconds the service may take to answer its health check.
START_TIMEOUT_S = 30.0


def _helpers():  # type: ignore[no-untyped-def]
    """``tests/qc/qc_helpers.py`` (the suite runs in importlib mode: load it by path)."""
    if "qc_helpers" not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "qc" / "qc_helpers.py"
        spec = importlib.util.spec_from_file_location("qc_helpers", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["qc_helpers"] = module
        spec.loader.exec_module(module)
    return sys.modules["qc_helpers"]


@dataclass(frozen=True)
class Served:
    """The running service: its base URL, the dataset folder and the token."""

    base_url: str
    dataset_dir: Path
    token: str

    def image_ids(self) -> list[str]:
        """Complete images of the dataset, sorted."""
        return _helpers().image_ids(self.dataset_dir)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """A headless Chromium; skips (fails in CI) when ``/usr/bin/chromium`` is missing."""
    if not CHROMIUM.exists():
        message = "Chromium is missing: apt-get install -y chromium (make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh browser context and page; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real pipeline results, shared with ``tests/qc`` when both run in one session."""
    return _helpers().make_results(tmp_path_factory.getbasetemp() / "qc-results")


@pytest.fixture(scope="module")
def served(results_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``overnight qc-web --dataset-dir`` on a free port over a private copy of the results.

    One server per test module (start-up costs seconds); tests review different images.
    """
    helpers = _helpers()
    dataset_dir = tmp_path_factory.mktemp("served") / "run1"
    shutil.copytree(results_dir, dataset_dir)
    port = helpers.free_port()
    env = {
        **os.environ,
        "OVERNIGHT_API_TOKEN": helpers.TOKEN,
        "OVERNIGHT_QC_LISTING_TTL_S": "0",
        "OVERNIGHT_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("overnight")),
            "qc-web",
            "--port",
            str(port),
            "--dataset-dir",
            str(dataset_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, process)
        yield Served(base_url, dataset_dir, helpers.TOKEN)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
