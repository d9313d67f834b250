"""The QC service on an S3 bucket (moto's S3 server on 127.0.0.1, driven through ``minio``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qc_helpers import AUTH, N_IMAGES, TOKEN, image_ids

from overnight.storage import LocalStore, S3Store, open_store
from overnight_qc.app import create_app
from overnight_qc.core.config import QcSettings

BUCKET = "qc-bucket"


@pytest.fixture
def settings(s3_endpoint: str, results_dir: Path) -> QcSettings:
    """A bucket holding the results as ``results/ds-s3/``, and settings that point at it."""
    values = QcSettings.model_validate(
        {
            "storage_url": f"s3://{BUCKET}",
            "s3_endpoint": s3_endpoint,
            "s3_access_key": "testing",
            "s3_secret_key": "testing",
            "s3_secure": False,
            "api_token": TOKEN,
            "qc_listing_ttl_s": 0,
        }
    )
    store = open_store(values.storage_url, values)
    assert isinstance(store, S3Store)
    store.ensure_bucket()
    local = LocalStore(results_dir)
    for info in local.list(""):
        store.write_bytes(f"results/ds-s3/{info.key}", local.read_bytes(info.key))
    return values


def test_dataset_image_and_verdict_on_s3(settings: QcSettings, results_dir: Path) -> None:
    image_id = image_ids(results_dir)[0]
    with TestClient(create_app(settings)) as client:
        listing = client.get("/", headers={"Accept": "text/html"}).text
        assert 'href="/datasets/ds-s3"' in listing and f"{N_IMAGES}/{N_IMAGES + 1} done" in listing
        page = client.get(f"/datasets/ds-s3/images/{image_id}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and '<path class="cell"' in page.text
        assert client.get(f"/datasets/ds-s3/images/{image_id}/thumb.jpg").status_code == 200
        saved = client.post(
            f"/datasets/ds-s3/images/{image_id}/verdict",
            data={"verdict": "rejected", "comment": "s3"},
            headers=AUTH,
        )
        assert saved.status_code == 200
    store = open_store(settings.storage_url, settings)
    stored = json.loads(store.read_bytes(f"results/ds-s3/{image_id}/verdict.json"))
    assert (stored["verdict"], stored["comment"]) == ("rejected", "s3")
    with TestClient(create_app(settings)) as client:  # a restart reads it back from the bucket
        assert (
            client.get(f"/datasets/ds-s3/images/{image_id}/verdict").json()["verdict"] == "rejected"
        )
