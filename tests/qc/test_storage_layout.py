"""Datasets under ``results/`` of a store, progress from the ingest API, and the retry button."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qc_helpers import AUTH, BAD_IMAGE, N_IMAGES, TOKEN, image_ids

from overnight.storage import LocalStore
from overnight_qc.app import create_app
from overnight_qc.core.config import QcSettings

HTML = {"Accept": "text/html"}


class FakeIngest(BaseHTTPRequestHandler):
    """A stand-in for the ingest API: ``GET /datasets/{id}`` and ``POST .../retry``."""

    calls: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.calls.append(("GET", self.path, self.headers.get("Authorization", "")))
        body = {
            "id": "ds-a",
            "state": "running",
            "counts": {"queued": 3, "running": 2, "done": N_IMAGES, "failed": 1},
            "failures": [{"image_id": "lost-one", "reason": "worker killed <b>twice</b>"}],
        }
        self._answer(200, body)

    def do_POST(self) -> None:  # noqa: N802
        self.calls.append(("POST", self.path, self.headers.get("Authorization", "")))
        self._answer(202, {"retried": 2})

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def ingest() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeIngest)
    FakeIngest.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def store_root(results_dir: Path, tmp_path: Path) -> Path:
    """A store with two datasets: ``ds-a`` (submitted, dataset.json) and ``ds-b`` (bare)."""
    root = tmp_path / "store"
    shutil.copytree(results_dir, root / "results" / "ds-a")
    shutil.copytree(results_dir, root / "results" / "ds-b")
    record = {
        "id": "ds-a",
        "source": "s3://lab/raw/ds-a",
        "pipeline": "cytometry-classical",
        "metadata": {"user": "marie"},
        "created_at": "2026-11-20T22:00:00Z",
        "n_images": N_IMAGES + 4,
    }
    (root / "results" / "ds-a" / "dataset.json").write_text(json.dumps(record))
    (root / "results" / "stray file.txt").write_text("not a dataset")
    return root


def _settings(root: Path, **changes: object) -> QcSettings:
    values: dict[str, object] = {
        "storage_url": str(root),
        "api_token": TOKEN,
        "qc_listing_ttl_s": 0,
    }
    return QcSettings(**{**values, **changes})  # type: ignore[arg-type]


def test_every_dataset_under_results_is_listed_with_owner_and_progress(store_root: Path) -> None:
    with TestClient(create_app(_settings(store_root))) as client:
        page = client.get("/", headers=HTML).text
    assert 'href="/datasets/ds-a"' in page and 'href="/datasets/ds-b"' in page
    assert "marie" in page and "2026-11-20T22:00:00Z" in page
    assert (
        f"{N_IMAGES}/{N_IMAGES + 4} done" in page and "3 queued" in page
    )  # 10 - 6 done - 1 failed


def test_progress_and_failures_come_from_the_ingest_api_when_set(
    store_root: Path, ingest: str
) -> None:
    with TestClient(create_app(_settings(store_root, ingest_url=ingest))) as client:
        listing = client.get("/", headers=HTML).text
        page = client.get("/datasets/ds-a", headers=HTML).text
    assert "2 running" in listing and "3 queued" in listing
    assert "lost-one" in page and "worker killed &lt;b&gt;twice&lt;/b&gt;" in page
    assert BAD_IMAGE in page  # from failures.json as well
    assert ("GET", "/datasets/ds-a", "") in FakeIngest.calls


def test_retry_calls_the_ingest_api_with_the_token(store_root: Path, ingest: str) -> None:
    with TestClient(create_app(_settings(store_root, ingest_url=ingest))) as client:
        assert client.post("/datasets/ds-a/retry").status_code == 401
        answer = client.post("/datasets/ds-a/retry", headers=AUTH)
        assert answer.status_code == 200 and answer.json() == {
            "ok": True,
            "message": "2 image(s) queued again",
        }
        assert client.post("/datasets/nope/retry", headers=AUTH).status_code == 404
    assert FakeIngest.calls.count(("POST", "/datasets/ds-a/retry", f"Bearer {TOKEN}")) == 1


def test_retry_reports_an_unreachable_ingest_api(store_root: Path) -> None:
    settings = _settings(store_root, ingest_url="http://127.0.0.1:9", qc_ingest_timeout_s=1)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/datasets/ds-a/retry", headers=AUTH)
        assert answer.status_code == 502 and "unreachable" in answer.json()["message"]
        page = client.get("/datasets/ds-a", headers=HTML)  # progress falls back to storage
        assert page.status_code == 200 and f"{N_IMAGES}/{N_IMAGES + 4} done" in page.text


def test_new_results_appear_and_verdicts_land_in_the_right_dataset(store_root: Path) -> None:
    with TestClient(create_app(_settings(store_root))) as client:
        first = image_ids(store_root / "results" / "ds-b")[0]
        client.post(
            f"/datasets/ds-b/images/{first}/verdict", data={"verdict": "accepted"}, headers=AUTH
        )
        assert (store_root / "results" / "ds-b" / first / "verdict.json").exists()
        assert not (store_root / "results" / "ds-a" / first / "verdict.json").exists()
        shutil.rmtree(
            store_root / "results" / "ds-b" / image_ids(store_root / "results" / "ds-b")[-1]
        )
        page = client.get("/datasets/ds-b", headers=HTML).text
        assert f"{N_IMAGES - 1} images" in page


def test_a_store_without_results_shows_an_empty_list(tmp_path: Path) -> None:
    LocalStore(tmp_path).write_bytes("raw/a.tif", b"x")
    with TestClient(create_app(_settings(tmp_path))) as client:
        page = client.get("/", headers=HTML)
        assert page.status_code == 200 and "No results yet" in page.text
        assert client.get("/datasets/missing", headers=HTML).status_code == 404
