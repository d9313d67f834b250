"""The watcher over a real Redis and NAS folder: stable files only, each image enqueued once."""

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from adversarial import write_adversarial_folder
from fixtures_redis import AUTH, RedisServer, ServiceProcess, fill_plate, service_env, wait_for
from overnight.imaging import relative_stem_of
from overnight.jobs.connection import connect
from overnight.jobs.ids import dataset_id_for
from overnight.jobs.queues import stage_queue
from overnight.jobs.state import JobBook
from overnight.jobs.submit import Submitter
from overnight.jobs.worker import run_worker
from overnight.storage import open_store
from overnight_ingest.core.config import IngestSettings
from overnight_ingest.watcher import Watcher

Start = Callable[[list[str], dict[str, str]], ServiceProcess]


def watcher_for(settings: IngestSettings, source: Path, stable_s: float) -> Watcher:
    submitter = Submitter(
        connect(settings.redis_url), open_store(settings.storage_url, settings), settings
    )
    return Watcher(submitter, [source.as_uri()], "cytometry-classical", stable_s)


def test_a_file_being_written_is_enqueued_once_complete(
    ingest_settings: IngestSettings, nas: Path, synth_images: list[Path]
) -> None:
    plate = nas / "plate1"
    plate.mkdir()
    content = synth_images[0].read_bytes()
    target = plate / "growing.tif"
    with target.open("wb") as out:
        out.write(content[: len(content) // 2])
    watcher = watcher_for(ingest_settings, plate, stable_s=5)
    queue = stage_queue(connect(ingest_settings.redis_url), "segmentation")

    now = time.time()
    assert watcher.scan(now).waiting == 1 and queue.count == 0
    assert watcher.scan(now + 4).enqueued == () and queue.count == 0, "not stable for 5 s yet"
    with target.open("ab") as out:  # the copy goes on: size and mtime change
        out.write(content[len(content) // 2 :])
    now = time.time()
    assert watcher.scan(now).enqueued == () and watcher.scan(now + 4.9).enqueued == ()
    assert watcher.recheck(now + 5.1).enqueued == ("growing.tif",)
    assert queue.count == 1

    dataset_id = dataset_id_for(plate.as_uri(), "cytometry-classical")
    book = JobBook(connect(ingest_settings.redis_url))
    assert book.seen_fingerprint(dataset_id, "growing.tif").startswith(f"{len(content)}:")
    assert watcher.scan(now + 60).known == 1
    os.utime(target, (now + 100, now + 100))  # touched: new mtime, same image
    assert watcher.scan(now + 200).enqueued == ()
    assert queue.count == 1 and book.enqueue_counts(dataset_id) == {"growing": 1}


def test_an_old_file_is_taken_at_the_first_scan(
    ingest_settings: IngestSettings, nas: Path, synth_images: list[Path]
) -> None:
    paths = fill_plate(nas / "plate1", synth_images, 3)
    for path in paths:
        os.utime(path, (time.time() - 60, time.time() - 60))
    report = watcher_for(ingest_settings, nas / "plate1", stable_s=10).scan()
    assert len(report.enqueued) == 3 and report.waiting == 0


def test_restarts_and_duplicate_submissions_never_enqueue_twice(
    ingest_settings: IngestSettings,
    redis_server: RedisServer,
    nas: Path,
    synth_images: list[Path],
    client: TestClient,
    services: Start,
    tmp_path: Path,
) -> None:
    total = 300
    plate = nas / "plate1"
    plate.mkdir()
    first = plate / "field_000.tif"
    first.write_bytes(synth_images[0].read_bytes())
    for index in range(1, total):  # hard links: many images, little disk
        os.link(first, plate / f"field_{index:03d}.tif")
    old = time.time() - 120
    for path in plate.iterdir():
        os.utime(path, (old, old))
    env = service_env(
        redis_url=redis_server.url,
        storage_url=(tmp_path / "store").as_uri(),
        nas_root=str(nas),
        pipeline="cytometry-classical",
        watch_sources=plate.as_uri(),
        watch_interval_s="0.2",
        watch_stable_s="1",
    )
    redis = connect(redis_server.url)
    queue = stage_queue(redis, "segmentation")
    watcher = services(["ingest", "watch"], env)
    at_kill = wait_for(lambda: queue.count, 60, "the watcher to start enqueueing", interval_s=0.005)
    watcher.kill()  # mid-scan, most likely: it enqueues a few hundred images per second at most
    stopped_at = queue.count

    answers: list[int] = []
    body = {"source": plate.as_uri(), "pipeline": "cytometry-classical"}
    submit = [
        threading.Thread(
            target=lambda: answers.append(
                client.post("/datasets", json=body, headers=AUTH).status_code
            )
        )
        for _ in range(2)
    ]
    services(["ingest", "watch"], env)
    for thread in submit:
        thread.start()
    for thread in submit:
        thread.join()
    wait_for(lambda: queue.count == total, 60, f"all {total} images to be enqueued")

    dataset_id = dataset_id_for(plate.as_uri(), "cytometry-classical")
    counts = JobBook(redis).enqueue_counts(dataset_id)
    assert len(counts) == total and set(counts.values()) == {1}
    assert len(set(queue.job_ids)) == total == len(queue.job_ids)
    assert sorted(answers) in ([200, 200], [200, 201])
    assert 0 < at_kill <= stopped_at < total, (
        f"the watcher was killed after its scan ({stopped_at} queued)"
    )


def test_the_adversarial_folder_loses_nothing_through_the_watcher(
    ingest_settings: IngestSettings, nas: Path, synth_images: list[Path], tmp_path: Path
) -> None:
    """Issue 13: spaces, accents, nested twins, links and folders: analysed or failed, with why."""
    root = nas / "hostile"
    found = write_adversarial_folder(root, synth_images[0], tmp_path / "elsewhere")
    watcher = watcher_for(ingest_settings, root, stable_s=0)
    report = watcher.scan(time.time() + 60)
    assert len(report.enqueued) == 8  # every readable entry inside the folder, one per id
    run_worker(ingest_settings, "all", burst=True)
    book = JobBook(connect(ingest_settings.redis_url))
    dataset_id = dataset_id_for(root.as_uri(), "cytometry-classical")
    states = book.images(dataset_id)
    assert len(states) == len(found)
    failed = {relative_stem_of(s.image_id): s.reason for s in states if s.status == "failed"}
    assert set(failed) == {"dangling", "folder", "outside", "a.tif"} and all(failed.values())
    assert sum(s.status == "done" for s in states) == 8  # outside.tif: refused by the service
    watcher.scan(time.time() + 120)  # a second scan changes nothing
    assert len(book.images(dataset_id)) == len(found)
    store = Path(ingest_settings.storage_url.removeprefix("file://")) / "results" / dataset_id
    assert (store / "summary.csv").is_file() and (store / "failures.json").is_file()


def test_a_stalled_copy_that_failed_is_analysed_again_once_finished(
    ingest_settings: IngestSettings, nas: Path, synth_images: list[Path]
) -> None:
    """Issue 13 #7: a copy stalled past the stability wait fails; the finished file is analysed."""
    plate = nas / "plate1"
    plate.mkdir()
    content = synth_images[0].read_bytes()
    target = plate / "stalled.tif"
    target.write_bytes(content[: len(content) // 3])
    watcher = watcher_for(ingest_settings, plate, stable_s=1)
    now = time.time()
    watcher.scan(now)
    assert watcher.scan(now + 2).enqueued == ("stalled.tif",)  # the stall outlasted the wait
    run_worker(ingest_settings, "all", burst=True)
    book = JobBook(connect(ingest_settings.redis_url))
    dataset_id = dataset_id_for(plate.as_uri(), "cytometry-classical")
    assert book.image(dataset_id, "stalled").status == "failed"

    target.write_bytes(content)  # the copy resumes and finishes
    later = time.time()
    watcher.scan(later)
    assert watcher.scan(later + 2).enqueued == ("stalled.tif",)
    run_worker(ingest_settings, "all", burst=True)
    assert book.image(dataset_id, "stalled").status == "done"
    assert watcher.scan(later + 10).enqueued == ()  # unchanged since: nothing more
