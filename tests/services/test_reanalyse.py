"""Review → retrain → re-analyse through the ingest API, with a real Redis and real workers.

A dataset is analysed with the shipped models; its images are corrected through
``save_annotation`` (the QC web's code path); ``POST /models/cells/train`` queues a fine-tune
that a worker runs (progress at ``GET /models/train/{id}``) and publishes to the registry;
``POST /datasets/{id}/reanalyse`` analyses the images again with that version into a new
dataset, whose results name it while the first results stay as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import overnight.results
from fixtures_redis import AUTH
from fixtures_reviews import save_truth_as_correction
from overnight.jobs.worker import run_worker
from overnight.models import loading
from overnight.results.layout import DatasetResults
from overnight.storage import open_store
from overnight_ingest.core.config import IngestSettings

MODEL_STEP = "locate_cells_ae.model"


@pytest.fixture()
def plate(nas: Path, synth_images: list[Path]) -> Path:
    """Two synthetic fields in a NAS folder."""
    folder = nas / "plate-reviewed"
    folder.mkdir()
    for image in synth_images[:2]:
        shutil.copy(image, folder / image.name)
    return folder


def _correct(store_url: str, dataset_id: str, truth_root: Path) -> int:
    """Save each image's generator truth as its correction; the number corrected."""
    store = open_store(store_url)
    results = DatasetResults.of_dataset(store, dataset_id)
    corrected = 0
    for prefix in sorted(results.published_images()):
        image_id = prefix.rsplit("/", 1)[-1]
        save_truth_as_correction(store, results, image_id, truth_root / image_id, "grace")
        corrected += 1
    return corrected


def _model_of(store_root: Path, dataset_id: str) -> set[str]:
    results = store_root / "results" / dataset_id
    return {
        json.loads(path.read_text())["versions"][MODEL_STEP]
        for path in results.glob("*/result.json")
    }


def test_correct_train_publish_reanalyse_names_the_new_version(
    client: TestClient,
    plate: Path,
    synth_images: list[Path],
    ingest_settings: IngestSettings,
    registry: Path,
) -> None:
    created = client.post(
        "/datasets", json={"source": plate.as_uri(), "pipeline": "cytometry"}, headers=AUTH
    ).json()
    run_worker(ingest_settings, "all", burst=True)
    store_root = Path(ingest_settings.storage_url.removeprefix("file://"))
    shipped = f"cells@{loading.shipped_version('cells')}"
    assert _model_of(store_root, created["id"]) == {shipped}
    assert (
        _correct(ingest_settings.storage_url, created["id"], synth_images[0].parents[1] / "truth")
        == 2
    )

    body = {"datasets": [created["id"]], "init": "default", "epochs": 1, "steps": 2}
    assert client.post("/models/cells/train", json=body).status_code == 401
    queued = client.post("/models/cells/train", json=body, headers=AUTH)
    assert queued.status_code == 202, queued.text
    status_url = queued.json()["status_url"]
    assert client.get(status_url).json()["progress"]["stage"] == "queued"
    run_worker(ingest_settings, "all", burst=True)
    trained = client.get(status_url).json()
    assert trained["queue_status"] == "finished", trained
    progress = trained["progress"]
    assert progress["stage"] == "done" and progress["images"] == 2
    version = progress["version"]
    listed = {m["name"]: m for m in client.get("/models").json()}
    assert version in [v["version"] for v in listed["cells"]["versions"]]

    request = {"models": {"cells": version}}
    assert client.post(f"/datasets/{created['id']}/reanalyse", json=request).status_code == 401
    answer = client.post(f"/datasets/{created['id']}/reanalyse", json=request, headers=AUTH)
    assert answer.status_code == 202, answer.text
    again = answer.json()
    assert again["reanalysis_of"] == created["id"] and again["enqueued"] == 2
    run_worker(ingest_settings, "all", burst=True)
    assert client.get(f"/datasets/{again['id']}").json()["state"] == "done"
    assert _model_of(store_root, again["id"]) == {f"cells@{version}"}
    assert _model_of(store_root, created["id"]) == {shipped}  # the first results stay
    for dataset_id in (created["id"], again["id"]):
        loaded = overnight.results.load(store_root / "results" / dataset_id)
        assert len(loaded.images) == 2 and len(loaded.cells) > 0
    repeat = client.post(f"/datasets/{created['id']}/reanalyse", json=request, headers=AUTH)
    assert repeat.status_code == 200 and repeat.json()["enqueued"] == 0


def test_reanalyse_refuses_unknown_datasets_models_and_versions(
    client: TestClient, plate: Path, registry: Path
) -> None:
    created = client.post(
        "/datasets", json={"source": plate.as_uri(), "pipeline": "cytometry"}, headers=AUTH
    ).json()
    url = f"/datasets/{created['id']}/reanalyse"
    missing = client.post(url, json={"models": {"cells": "20990101-000000-deadbeef"}}, headers=AUTH)
    assert missing.status_code == 404 and "known versions" in missing.json()["detail"]
    assert client.post(url, json={"models": {"skin": "latest"}}, headers=AUTH).status_code == 422
    assert client.post(url, json={"models": {}}, headers=AUTH).status_code == 422
    unknown = client.post(
        "/datasets/nope/reanalyse", json={"models": {"cells": "latest"}}, headers=AUTH
    )
    assert unknown.status_code == 404
    train = client.post("/models/cells/train", json={"datasets": ["nope"]}, headers=AUTH)
    assert train.status_code == 404
    assert client.get("/models/train/train-" + "0" * 32).status_code == 404


def test_a_dataset_names_its_model_versions_at_registration(
    client: TestClient, plate: Path, registry: Path
) -> None:
    body = {"source": plate.as_uri(), "pipeline": "cytometry", "models": {"cells": "latest"}}
    created = client.post("/datasets", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    record = client.get(f"/datasets/{created.json()['id']}").json()
    assert record["metadata"]["models"] == {"cells": loading.shipped_version("cells")}
    body["models"] = {"cells": "20990101-000000-deadbeef"}
    assert client.post("/datasets", json=body, headers=AUTH).status_code == 404
