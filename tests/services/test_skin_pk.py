"""Skin PK as a service: a skin-pk dataset submitted over REST and one found by the watcher both
run end to end through the queue (real redis-server, real API and worker processes), and the QC
web's PK page shows the result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fixtures_redis import API_TOKEN, AUTH, RedisServer, free_port, service_env, wait_for
from overnight.config import load_settings
from overnight.jobs.ids import dataset_id_for
from overnight.results.layout import DatasetResults
from overnight.storage import open_store, read_manifest
from overnight.synth.skin import write_skin_dataset
from overnight_qc.app import create_app as create_qc_app
from overnight_qc.core.config import QcSettings

pytestmark = pytest.mark.slow

PIPELINE = "skin-pk"


@pytest.fixture(scope="module")
def skin_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small generated series: 4 timepoints of 2 depths, 256² px."""
    root = tmp_path_factory.mktemp("skin")
    write_skin_dataset(root, 5, size=256, n_depths=2, n_timepoints=4)
    return sorted((root / "images").glob("*.tif"))


def _copy(images: list[Path], folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    for path in images:
        shutil.copy(path, folder / path.name)
    return sorted(p.name.removesuffix(".tif") for p in images)


def test_skin_pk_over_rest_and_the_watcher_through_the_queue(
    redis_server: RedisServer,  # noqa: F811
    services,  # noqa: ANN001, F811
    tmp_path: Path,
    nas: Path,
    skin_images: list[Path],
) -> None:
    submitted, watched = nas / "skin-a", nas / "skin-b"
    image_ids = _copy(skin_images, submitted)
    store_url = (tmp_path / "store").as_uri()
    env = service_env(
        redis_url=redis_server.url,
        storage_url=store_url,
        nas_root=str(nas),
        pipeline=PIPELINE,
        api_token=API_TOKEN,
        lease_s="5",
        watch_sources=watched.as_uri(),
        watch_pipeline=PIPELINE,
        watch_interval_s="1",
        watch_stable_s="0.5",
    )
    port = free_port()
    services(["ingest", "serve", "--port", str(port)], env)
    services(["worker", "all"], env)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def healthy() -> bool:
        try:
            return api.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, 60, "the API to answer")
    answer = api.post(
        "/datasets", json={"source": submitted.as_uri(), "pipeline": PIPELINE}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text
    rest_id = str(answer.json()["id"])

    _copy(skin_images, watched)
    services(["ingest", "watch"], env)
    watched_id = dataset_id_for(watched.as_uri(), PIPELINE)

    def finished(dataset_id: str) -> dict | None:
        try:
            status = api.get(f"/datasets/{dataset_id}").json()
        except httpx.TransportError:
            return None
        return status if status.get("state") in ("done", "failed", "partial") else None

    store = open_store(store_url)
    for dataset_id in (rest_id, watched_id):
        status = wait_for(lambda d=dataset_id: finished(d), 300, f"dataset {dataset_id}")
        assert status["state"] == "done", status
        results = DatasetResults.of_dataset(store, dataset_id)
        for image_id in image_ids:
            assert read_manifest(store, results.image_prefix(image_id)) is not None
        for name in ("series.json", "nca.csv", "nca_depth.csv", "profiles.csv"):
            assert store.exists(results.key(name)), name
        assert store.exists(results.key("pk/depth_time_heatmap.png"))

    qc = create_qc_app(load_settings(QcSettings, storage_url=store_url, api_token=API_TOKEN))
    with TestClient(qc) as client:
        page = client.get(f"/datasets/{rest_id}/pk")
        assert page.status_code == 200, page.text
        assert "stratum" in page.text.lower() and "cmax" in page.text.lower()
