"""A poison image with real worker processes (issue 13 #2): killed workers, good images go on.

The worker is SIGKILLed whenever it starts the poison image (what a container memory limit
does to a worker that analyses an image too large for it) and started again, as compose or
``overnight stack`` would. Before the fix the job went back to the front of the queue
without spending a retry: re-queued forever, the images behind it never ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from rq.job import JobStatus as RQStatus

from fixtures_redis import RedisServer, ServiceProcess, fill_plate, service_env
from overnight.config import load_settings
from overnight.jobs.connection import connect
from overnight.jobs.ids import job_id_for
from overnight.jobs.queues import fetch_job
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import list_images, open_source
from overnight.jobs.state import JobBook
from overnight.jobs.submit import Submitter
from overnight.storage import open_store

Start = Callable[[list[str], dict[str, str]], ServiceProcess]
RETRY_MAX = 3
LEASE_S = 2


def test_a_poison_image_fails_after_its_retries_and_blocks_nothing(
    redis_server: RedisServer, tmp_path: Path, synth_images: list[Path], services: Start
) -> None:
    nas = tmp_path / "nas"
    fill_plate(nas / "plate1", synth_images, 4)
    field = tifffile.imread(nas / "plate1" / "field_000.tif")  # ZCYX
    big = np.tile(field, (1, 1, 4, 4))  # 16 x the area: seconds to analyse, time to be killed
    tifffile.imwrite(nas / "plate1" / "a_poison.tif", big, metadata={"axes": "ZCYX"})
    values = {
        "redis_url": redis_server.url,
        "storage_url": (tmp_path / "store").as_uri(),
        "nas_root": str(nas),
        "pipeline": "cytometry-classical",
        "lease_s": str(LEASE_S),
        "retry_max": str(RETRY_MAX),
        "retry_backoff_s": "0",
    }
    settings = load_settings(JobSettings, **values)  # type: ignore[arg-type]
    redis = connect(settings.redis_url)
    submitter = Submitter(redis, open_store(settings.storage_url, settings), settings)
    record, _ = submitter.register((nas / "plate1").as_uri(), "cytometry-classical")
    submitter.enqueue_images(record, list_images(open_source(record.source, settings)))
    poison_job = job_id_for("segmentation", record.id, "a_poison")
    env = service_env(**values)
    book = JobBook(redis)

    start = time.time()
    worker = services(["worker", "all"], env)
    kills = 0
    killed: set[str | None] = set()
    done_at: dict[str, float] = {}
    deadline = start + 600
    while time.time() < deadline:
        job = fetch_job(redis, poison_job)
        if (
            job is not None
            and job.get_status() == RQStatus.STARTED
            and job.worker_name not in killed  # a new run, not the dead one's leftover
        ):
            killed.add(job.worker_name)
            worker.kill()  # the memory limit strikes
            kills += 1
            worker = services(["worker", "all"], env)  # restart: unless-stopped
        if not worker.alive():
            worker = services(["worker", "all"], env)
        for state in book.images(record.id):
            if state.status in ("done", "failed") and state.image_id not in done_at:
                done_at[state.image_id] = time.time() - start
        if len(done_at) == 5:
            break
        time.sleep(0.05)
    states = {s.image_id: s for s in book.images(record.id)}
    report = {
        "kills": kills,
        "requeues": len(book.requeues()),
        "finished_at_s": {k: round(v, 1) for k, v in sorted(done_at.items())},
        "poison_reason": states["a_poison"].reason,
    }
    (tmp_path / "poison.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    assert states["a_poison"].status == "failed", report
    assert f"worker died {RETRY_MAX + 1} times (memory limit?)" in states["a_poison"].reason
    assert kills == RETRY_MAX + 1 and report["requeues"] == RETRY_MAX, report
    assert all(states[f"field_{i:03d}"].status == "done" for i in range(4)), report
    # every good image finished before the poison image was given up on
    assert max(done_at[f"field_{i:03d}"] for i in range(4)) <= done_at["a_poison"] + 1, report
    store = tmp_path / "store" / "results" / record.id
    failures = json.loads((store / "failures.json").read_text())
    assert [f["image_id"] for f in failures] == ["a_poison"]
