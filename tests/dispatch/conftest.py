"""Fixtures of the dispatcher tests: a real redis-server, the API server stand-in, a queue."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from overnight.config import load_settings
from overnight.dispatch.settings import DispatchSettings
from overnight.jobs.settings import JobSettings
from overnight.jobs.state import DatasetRecord
from overnight.jobs.submit import Submitter
from overnight.storage import ObjectInfo, open_store
from overnight_dispatch.dispatcher import Dispatcher
from overnight_dispatch.kube import Backoff, KubeJobs

# The Redis server fixture is shared with tests/jobs and tests/services (one module in tests/);
# the stand-in lives beside this file. pytest puts neither folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from apiserver_standin import ApiServerStandIn  # noqa: E402

from fixtures_redis import RedisServer, redis_server, services  # noqa: E402, F401

#: Fast retries for tests: the stand-in answers in milliseconds.
TEST_BACKOFF = Backoff(tries=6, first_s=0.02, max_s=2.0)
#: The Helm release whose Jobs the dispatcher selects.
RELEASE = "test-release"


@pytest.fixture
def standin() -> Iterator[ApiServerStandIn]:
    """A stand-in for the Kubernetes API server on 127.0.0.1 (see apiserver_standin.py)."""
    server = ApiServerStandIn().start()
    yield server
    server.stop()


def batch_api(url: str) -> client.BatchV1Api:
    """The official client's batch/v1 API pointed at ``url``."""
    configuration = client.Configuration()
    configuration.host = url
    return client.BatchV1Api(client.ApiClient(configuration))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A results folder (the dispatcher writes a dataset's summary there when it finishes)."""
    return (tmp_path / "store").as_uri()


@pytest.fixture
def make_settings(
    redis_server: RedisServer,  # noqa: F811
    store_url: str,
) -> Callable[..., DispatchSettings]:
    """Dispatcher settings over the test's Redis and store; keywords override."""

    def make(**overrides: object) -> DispatchSettings:
        values: dict[str, object] = {
            "redis_url": redis_server.url,
            "storage_url": store_url,
            "max_active_jobs": 3,
            "job_image": "overnight/segmentation:test",
            "job_labels": {"app.kubernetes.io/instance": RELEASE},
        }
        values.update(overrides)
        return load_settings(DispatchSettings, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def submitter(redis_server: RedisServer, store_url: str) -> Submitter:  # noqa: F811
    """The queue side, as the ingest API uses it."""
    settings = load_settings(
        JobSettings, redis_url=redis_server.url, storage_url=store_url, retry_max=0
    )
    return Submitter(redis_server.client(), open_store(store_url, settings), settings)


@pytest.fixture
def enqueue(submitter: Submitter) -> Callable[[int], DatasetRecord]:
    """Register an upload dataset and enqueue ``n`` images (``field_000.tif`` ...)."""

    def fill(n: int) -> DatasetRecord:
        record, _ = submitter.register(None, "cytometry-classical")
        keys = [ObjectInfo(key=f"field_{i:03d}.tif", size=1, mtime=0.0) for i in range(n)]
        submitter.enqueue_images(record, keys)
        return record

    return fill


class RunningDispatcher:
    """A :class:`Dispatcher` running in a thread of the test process."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    def _run(self) -> None:
        try:
            self.dispatcher.run()
        except BaseException as err:  # reported by stop()
            self.error = err

    def stop(self) -> None:
        """Stop it, wait for it, and fail the test if it raised."""
        self.dispatcher.stop.set()
        self.dispatcher.wake.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the dispatcher did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def make_dispatcher(
    standin: ApiServerStandIn,
    redis_server: RedisServer,  # noqa: F811
) -> Callable[..., Dispatcher]:
    """A dispatcher over the stand-in and the test's Redis (``sleeps`` records back-offs)."""

    def make(settings: DispatchSettings, sleeps: list[float] | None = None) -> Dispatcher:
        def sleep(seconds: float) -> None:
            if sleeps is not None:
                sleeps.append(seconds)
            threading.Event().wait(seconds)

        jobs = KubeJobs(batch_api(standin.url), settings.job_namespace, TEST_BACKOFF, sleep)
        return Dispatcher(settings, redis_server.client(), jobs, poll_s=0.1, watch_timeout_s=5)

    return make


@pytest.fixture
def run_dispatcher(
    make_dispatcher: Callable[..., Dispatcher],
) -> Iterator[Callable[..., RunningDispatcher]]:
    """Start dispatchers in threads (stopped after the test); returns the running one."""
    running: list[RunningDispatcher] = []

    def start(settings: DispatchSettings, sleeps: list[float] | None = None) -> RunningDispatcher:
        runner = RunningDispatcher(make_dispatcher(settings, sleeps))
        runner.thread.start()
        running.append(runner)
        return runner

    yield start
    for runner in running:
        if runner.thread.is_alive():
            runner.stop()
