"""Fixtures of the queue tests: a real redis-server per test, small synthetic images."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from overnight.config import load_settings
from overnight.jobs.settings import JobSettings
from overnight.synth.dataset import write_dataset

# The servers are shared with tests/services: one module in tests/, found through sys.path
# (pytest imports test folders without putting them on it).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_redis import RedisServer, redis_server, services  # noqa: E402, F401

#: Side of the synthetic test images (px): small, so a job takes a fraction of a second.
IMAGE_SIZE = 256


@pytest.fixture(scope="session")
def synth_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four 256² synthetic fields (read-only: copy them before changing anything)."""
    return write_dataset(tmp_path_factory.mktemp("synth"), 4, seed=7, size=IMAGE_SIZE)


__all__ = ["RedisServer"]


@pytest.fixture
def nas(tmp_path: Path, synth_images: list[Path]) -> Path:
    """A NAS root holding ``plate1/`` with copies of the synthetic images."""
    import shutil

    plate = tmp_path / "nas" / "plate1"
    plate.mkdir(parents=True)
    for path in synth_images:
        shutil.copy(path, plate / path.name)
    return tmp_path / "nas"


@pytest.fixture
def job_settings(redis_server: RedisServer, tmp_path: Path, nas: Path) -> JobSettings:  # noqa: F811
    """Settings over the test's Redis, a results folder and the NAS (short lease, no backoff)."""
    return load_settings(
        JobSettings,
        redis_url=redis_server.url,
        storage_url=(tmp_path / "store").as_uri(),
        nas_root=str(nas),
        pipeline="cytometry-classical",
        lease_s=2,
        retry_max=2,
        retry_backoff_s=0,
    )
