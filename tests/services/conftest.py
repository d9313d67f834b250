"""Fixtures of the service tests: real redis-server, the API app, a NAS folder of small images."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overnight.config import load_settings
from overnight.synth.dataset import write_dataset

# The servers are shared with tests/jobs: one module in tests/, found through sys.path
# (pytest imports test folders without putting them on it).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_redis import (  # noqa: E402, F401
    API_TOKEN,
    UPLOAD_CAP_BYTES,
    RedisServer,
    redis_server,
    services,
)
from overnight_ingest.app import create_app  # noqa: E402
from overnight_ingest.core.config import IngestSettings  # noqa: E402

#: Side of the synthetic test images (px): small, so a job takes a fraction of a second.
IMAGE_SIZE = 256


@pytest.fixture(scope="session")
def synth_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four 256² synthetic fields (read-only: copy them before changing anything)."""
    return write_dataset(tmp_path_factory.mktemp("synth"), 4, seed=11, size=IMAGE_SIZE)


@pytest.fixture
def nas(tmp_path: Path) -> Path:
    """The allowed NAS root (empty)."""
    root = tmp_path / "nas"
    root.mkdir()
    return root


@pytest.fixture
def ingest_settings(redis_server: RedisServer, tmp_path: Path, nas: Path) -> IngestSettings:  # noqa: F811
    """API settings over the test's Redis, a results folder and the NAS."""
    return load_settings(
        IngestSettings,
        redis_url=redis_server.url,
        storage_url=(tmp_path / "store").as_uri(),
        nas_root=str(nas),
        pipeline="cytometry-classical",
        api_token=API_TOKEN,
        upload_max_bytes=UPLOAD_CAP_BYTES,
    )


@pytest.fixture
def client(ingest_settings: IngestSettings) -> Iterator[TestClient]:
    """The API in this process (FastAPI's TestClient), over a real Redis."""
    with TestClient(create_app(ingest_settings)) as test_client:
        yield test_client
