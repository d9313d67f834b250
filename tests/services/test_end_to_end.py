"""The system as real processes: redis-server, the API under uvicorn, worker subprocesses.

Each scenario checks that nothing is lost (every image has its result) and nothing is doubled
(one manifest per image, each image enqueued once, one summary row per image).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from minio import Minio
from rq.registry import StartedJobRegistry

from fixtures_redis import (
    API_TOKEN,
    AUTH,
    RedisServer,
    ServiceProcess,
    fill_plate,
    free_port,
    service_env,
    wait_for,
)
from overnight.jobs.connection import connect
from overnight.jobs.queues import stage_queue
from overnight.jobs.settings import JobSettings
from overnight.jobs.state import JobBook
from overnight.storage import ObjectStore, open_store, read_manifest

pytestmark = pytest.mark.slow

Start = Callable[[list[str], dict[str, str]], ServiceProcess]
#: Lease of a running job in these tests (s): a killed worker's job is re-queued about this late.
LEASE_S = 2
_WORKER_PID = re.compile(r"^(?:segmentation|pnp|all)-.+-(\d+)-[0-9a-f]{6}$")


@dataclass
class LocalStack:
    """API + workers as subprocesses over one Redis; restarts killed workers on request."""

    start: Start
    env: dict[str, str]
    workers: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    api: httpx.Client | None = None

    def up(self, workers_per_kind: int = 2) -> LocalStack:
        port = free_port()
        self.start(["ingest", "serve", "--port", str(port)], self.env)
        for kind in ("segmentation", "pnp"):
            self.workers[kind] = [
                self.start(["worker", kind], self.env) for _ in range(workers_per_kind)
            ]
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        wait_for(self._healthy, 60, "the API to answer")
        return self

    def _healthy(self) -> bool:
        assert self.api is not None
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def submit(self, source: str) -> str:
        assert self.api is not None
        answer = self.api.post(
            "/datasets", json={"source": source, "pipeline": "cytometry-classical"}, headers=AUTH
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def status(self, dataset_id: str) -> dict:
        assert self.api is not None
        return self.api.get(f"/datasets/{dataset_id}").json()

    def wait_finished(self, dataset_id: str, timeout_s: float) -> dict:
        def finished() -> dict | None:
            try:
                status = self.status(dataset_id)
            except httpx.TransportError:
                return None
            return status if status["state"] in ("done", "failed", "partial") else None

        return wait_for(finished, timeout_s, f"dataset {dataset_id} to finish", interval_s=0.2)

    def restart(self, victim: ServiceProcess) -> None:
        for kind, processes in self.workers.items():
            if victim in processes:
                processes[processes.index(victim)] = self.start(["worker", kind], self.env)


def stack_env(redis_url: str, tmp_path: Path, nas: Path, **extra: str) -> dict[str, str]:
    return service_env(
        redis_url=redis_url,
        storage_url=extra.pop("storage_url", (tmp_path / "store").as_uri()),
        nas_root=str(nas),
        pipeline="cytometry-classical",
        api_token=API_TOKEN,
        lease_s=str(LEASE_S),
        retry_backoff_s="1",
        **extra,
    )


@pytest.fixture
def stack(
    redis_server: RedisServer, tmp_path: Path, nas: Path, services: Start
) -> Iterator[LocalStack]:
    yield LocalStack(services, stack_env(redis_server.url, tmp_path, nas)).up()


def assert_nothing_lost_or_doubled(
    store: ObjectStore, redis_url: str, dataset_id: str, done: set[str]
) -> None:
    """Every done image has exactly one valid manifest; each image was enqueued once."""
    manifests = [
        i.key for i in store.list(f"results/{dataset_id}/") if i.key.endswith("/manifest.json")
    ]
    assert sorted(manifests) == sorted(f"results/{dataset_id}/{i}/manifest.json" for i in done)
    for image_id in done:
        assert read_manifest(store, f"results/{dataset_id}/{image_id}") is not None
    counts = JobBook(connect(redis_url)).enqueue_counts(dataset_id)
    assert set(counts.values()) == {1}, counts
    rows = store.read_bytes(f"results/{dataset_id}/summary.csv").decode().strip().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == sorted(done)


def test_24_images_over_rest_and_an_upload_are_analysed_completely(
    stack: LocalStack,
    nas: Path,
    synth_images: list[Path],
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    images = fill_plate(nas / "plate1", synth_images, 24)
    dataset_id = stack.submit((nas / "plate1").as_uri())
    assert stack.api is not None
    uploads = stack.api.post(
        "/datasets", json={"pipeline": "cytometry-classical"}, headers=AUTH
    ).json()["id"]
    with synth_images[1].open("rb") as image:
        upload = stack.api.post(
            f"/datasets/{uploads}/images", files={"file": ("up_1.tif", image)}, headers=AUTH
        )
    assert upload.status_code == 201, upload.text

    status = stack.wait_finished(dataset_id, 240)
    assert status["state"] == "done" and status["counts"]["done"] == 24 and status["failures"] == []
    assert stack.wait_finished(uploads, 60)["state"] == "done"
    job = stack.api.get(f"/jobs/{upload.json()['job_id']}").json()
    assert job["status"] == "done" and job["queue_status"] == "finished"
    assert (tmp_path / "store" / "results" / uploads / "up_1" / "manifest.json").exists()
    done = {p.stem for p in images}
    assert_nothing_lost_or_doubled(
        open_store((tmp_path / "store").as_uri()), redis_server.url, dataset_id, done
    )
    listed = {d["id"]: d for d in stack.api.get("/datasets").json()}
    assert listed[dataset_id]["state"] == "done"
    metrics = stack.api.get("/metrics").text
    assert 'overnight_images{status="done"} 25.0' in metrics
    assert 'overnight_job_duration_seconds_count{stage="counting"}' in metrics


def test_killing_workers_mid_job_loses_nothing(
    stack: LocalStack,
    nas: Path,
    synth_images: list[Path],
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    images = fill_plate(nas / "plate1", synth_images, 24)
    redis = connect(redis_server.url)
    dataset_id = stack.submit((nas / "plate1").as_uri())
    kills: list[tuple[float, str]] = []
    # A job whose workers die more than retry_max times is failed as a poison image (tested in
    # test_poison.py); here each job is killed at most retry_max times, so every one must finish.
    max_kills_per_job = JobSettings.model_fields["retry_max"].default

    def busy_worker() -> tuple[ServiceProcess, str] | None:
        for stage in ("segmentation", "counting"):
            registry = StartedJobRegistry(queue=stage_queue(redis, stage))
            for entry in redis.zrange(registry.key, 0, -1):
                job_id = entry.decode().split(":")[0]
                if sum(killed == job_id for _, killed in kills) >= max_kills_per_job:
                    continue
                worker = (redis.hget(f"rq:job:{job_id}", "worker_name") or b"").decode()
                pid = _WORKER_PID.match(worker)
                for process in [p for ps in stack.workers.values() for p in ps]:
                    if pid and process.alive() and process.pid == int(pid.group(1)):
                        return process, job_id
        return None

    while len(kills) < 12 and stack.status(dataset_id)["state"] not in (
        "done",
        "partial",
        "failed",
    ):
        found = wait_for(
            lambda: busy_worker() or stack.status(dataset_id)["state"] == "done",
            60,
            "a worker busy with a job",
            interval_s=0.02,
        )
        if found is True:
            break
        victim, job_id = found
        victim.kill()
        kills.append((time.time(), job_id))
        stack.restart(victim)
    status = stack.wait_finished(dataset_id, 300)

    assert len(kills) >= 10, f"only {len(kills)} kills happened before the run ended"
    assert status["state"] == "done" and status["counts"]["done"] == 24
    done = {p.stem for p in images}
    assert_nothing_lost_or_doubled(
        open_store((tmp_path / "store").as_uri()), redis_server.url, dataset_id, done
    )
    requeues = JobBook(redis).requeues()
    delays = []
    for killed_at, job_id in kills:
        later = [
            r["requeued_at"]
            for r in requeues
            if r["job_id"] == job_id and r["requeued_at"] >= killed_at
        ]
        if later:
            delays.append(min(later) - killed_at)
    assert delays, "no killed job was re-queued"
    report = {
        "kills": len(kills),
        "requeued": len(delays),
        "requeue_delay_s_median": statistics.median(delays),
        "requeue_delay_s_max": max(delays),
        "lease_s": LEASE_S,
    }
    print("kill report:", json.dumps(report))
    assert max(delays) < LEASE_S + 4, report


def test_restarting_redis_mid_run_loses_no_job(
    tmp_path: Path, nas: Path, synth_images: list[Path], services: Start
) -> None:
    redis_server = RedisServer(tmp_path / "redis-aof", persistent=True)
    redis_server.start()
    try:
        images = fill_plate(nas / "plate1", synth_images, 24)
        stack = LocalStack(services, stack_env(redis_server.url, tmp_path, nas)).up()
        dataset_id = stack.submit((nas / "plate1").as_uri())
        wait_for(lambda: stack.status(dataset_id)["counts"]["done"] >= 3, 120, "the first results")
        redis_server.stop()
        redis_server.start()
        status = stack.wait_finished(dataset_id, 240)
        assert status["state"] == "done" and status["counts"]["done"] == 24, status
        done = {p.stem for p in images}
        assert_nothing_lost_or_doubled(
            open_store((tmp_path / "store").as_uri()), redis_server.url, dataset_id, done
        )
    finally:
        redis_server.stop()


def test_corrupt_images_fail_with_reasons_and_good_ones_finish(
    stack: LocalStack,
    nas: Path,
    synth_images: list[Path],
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    plate = nas / "plate1"
    good = fill_plate(plate, synth_images, 8)
    bad = {
        "empty": b"",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "truncated": synth_images[0].read_bytes()[:5000],
        "noise": bytes(range(256)) * 40,
    }
    for name, content in bad.items():
        (plate / f"{name}.tif").write_bytes(content)
    dataset_id = stack.submit(plate.as_uri())
    status = stack.wait_finished(dataset_id, 240)
    assert status["state"] == "partial"
    assert status["counts"] == {"queued": 0, "running": 0, "done": 8, "failed": 4}
    reasons = {f["image_id"]: f["reason"] for f in status["failures"]}
    assert set(reasons) == set(bad) and all(reasons.values())
    assert_nothing_lost_or_doubled(
        open_store((tmp_path / "store").as_uri()),
        redis_server.url,
        dataset_id,
        {p.stem for p in good},
    )


def test_a_bucket_prefix_is_analysed_into_the_bucket(
    redis_server: RedisServer,
    tmp_path: Path,
    nas: Path,
    synth_images: list[Path],
    services: Start,
    s3_endpoint: str,
) -> None:
    client = Minio(
        s3_endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
    )
    client.make_bucket("lab-e2e")
    for index, path in enumerate(synth_images[:3]):
        client.fput_object("lab-e2e", f"raw/plate9/field_{index}.tif", str(path))
    env = stack_env(
        redis_server.url,
        tmp_path,
        nas,
        storage_url="s3://lab-e2e/out",
        s3_endpoint=s3_endpoint,
        s3_secure="false",
        s3_access_key="testing",
        s3_secret_key="testing",
    )
    stack = LocalStack(services, env).up(workers_per_kind=1)
    dataset_id = stack.submit("s3://lab-e2e/raw/plate9")
    status = stack.wait_finished(dataset_id, 180)
    assert status["state"] == "done" and status["counts"]["done"] == 3
    names = {
        o.object_name
        for o in client.list_objects("lab-e2e", prefix=f"out/results/{dataset_id}/", recursive=True)
    }
    assert {f"out/results/{dataset_id}/field_{i}/manifest.json" for i in range(3)} <= names
    assert f"out/results/{dataset_id}/summary.csv" in names
