"""One image use case: the embedded run, the queue and the Kubernetes pod write the same results.

The same nested-folder dataset goes through all three runners: ``run_batch`` (``overnight
run``), RQ workers over a real Redis (``segment_image`` → ``count_image``) and ``overnight
worker run-image`` once per image followed by the dispatcher's finish. Tables must be
byte-identical and ``result.json`` identical except timings; folder metadata from every
level of the dataset must be in it (the embedded run once read only the image's own folder).
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.config import load_settings
from overnight.imaging import image_id_for
from overnight.jobs.connection import connect
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import list_images, open_source
from overnight.jobs.stages import finish_if_done
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus
from overnight.jobs.submit import Submitter
from overnight.jobs.worker import run_worker
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.results.layout import DatasetResults
from overnight.storage import open_store
from overnight.synth.dataset import write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_redis import RedisServer, redis_server  # noqa: E402, F401

PIPELINE = "cytometry-classical"
#: Where the three images lie inside the dataset folder ``study/``.
FOLDERS = ("", "drug-rux_formulation-tc", "drug-rux_formulation-tc/timepoint-30min")
TABLES = ("cells.csv", "pnps.csv", "labels.tif", "qc.png")


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Iterator[None]:
    """RQ installs SIGINT/SIGTERM handlers in the worker's process: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """``nas/study/`` with one image at each of three folder depths."""
    images = write_dataset(tmp_path / "synth", len(FOLDERS), seed=11, size=256)
    root = tmp_path / "nas" / "study"
    for folder, path in zip(FOLDERS, images, strict=True):
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / folder / path.name)
    return root


def _settings(redis_url: str, store: Path, nas: Path) -> JobSettings:
    return load_settings(
        JobSettings,
        redis_url=redis_url,
        storage_url=store.as_uri(),
        nas_root=str(nas),
        pipeline=PIPELINE,
        lease_s=2,
        retry_max=0,
        retry_backoff_s=0,
    )


def _register(
    settings: JobSettings, study: Path, enqueue: bool
) -> tuple[Submitter, str, list[str]]:
    submitter = Submitter(
        connect(settings.redis_url), open_store(settings.storage_url, settings), settings
    )
    record, _ = submitter.register(study.as_uri(), PIPELINE)
    images = list_images(open_source(record.source, settings))
    if enqueue:
        submitter.enqueue_images(record, images)
    return submitter, record.id, [info.key for info in images]


def _without_timings(data: bytes) -> dict[str, object]:
    record = json.loads(data)
    record.pop("timings_s")
    record.pop("finished_at")
    return record


def test_embedded_queue_and_pod_write_the_same_results(
    study: Path,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nas = study.parent
    paths = sorted(study.rglob("*.tif"))
    assert len(paths) == 3

    embedded = DatasetResults(open_store(str(tmp_path / "embedded")))
    outcomes = run_batch(
        paths,
        BatchOptions(pipeline=PIPELINE, out_url=str(tmp_path / "embedded"), dataset_dir=study),
    )
    assert [o.status for o in outcomes] == ["done"] * 3

    queue_settings = _settings(redis_server.url, tmp_path / "queue", nas)
    _, queue_id, _ = _register(queue_settings, study, enqueue=True)
    run_worker(queue_settings, "all", burst=True)
    queued = DatasetResults.of_dataset(open_store(str(tmp_path / "queue")), queue_id)

    pod_settings = _settings(redis_server.url.rsplit("/", 1)[0] + "/1", tmp_path / "pod", nas)
    submitter, pod_id, keys = _register(pod_settings, study, enqueue=False)
    for name, value in {
        "OVERNIGHT_REDIS_URL": pod_settings.redis_url,
        "OVERNIGHT_STORAGE_URL": pod_settings.storage_url,
        "OVERNIGHT_NAS_ROOT": str(nas),
        "OVERNIGHT_PIPELINE": PIPELINE,
    }.items():
        monkeypatch.setenv(name, value)
    book = JobBook(submitter.redis)
    for key in keys:
        result = CliRunner().invoke(
            cli, ["worker", "run-image", "--dataset-id", pod_id, "--image-key", key]
        )
        assert result.exit_code == 0, result.output
        image_id = image_id_for(key)  # the folders are part of the id
        book.claim_image(pod_id, image_id, key, f"job-{image_id}")
        book.set_status(pod_id, image_id, JobStatus.DONE)  # what the dispatcher records
    pod = DatasetResults.of_dataset(open_store(str(tmp_path / "pod")), pod_id)
    assert finish_if_done(book, pod, pod_id)

    image_ids = sorted(image_id_for(p.relative_to(study).as_posix()) for p in paths)
    for results in (queued, pod):
        assert sorted(p.rsplit("/", 1)[-1] for p in results.published_images()) == image_ids
        for name in ("summary.csv", "failures.json"):
            assert results.store.read_bytes(results.key(name)) == embedded.store.read_bytes(
                embedded.key(name)
            ), name
        for image_id in image_ids:
            for table in TABLES:
                assert results.store.read_bytes(
                    f"{results.image_prefix(image_id)}/{table}"
                ) == embedded.store.read_bytes(f"{embedded.image_prefix(image_id)}/{table}"), (
                    image_id,
                    table,
                )
            assert _without_timings(
                results.store.read_bytes(f"{results.image_prefix(image_id)}/result.json")
            ) == _without_timings(
                embedded.store.read_bytes(f"{embedded.image_prefix(image_id)}/result.json")
            )

    deepest = image_id_for(
        next(p for p in paths if p.parent.name == "timepoint-30min").relative_to(study).as_posix()
    )
    record = json.loads(embedded.store.read_bytes(f"{deepest}/result.json"))
    assert record["schema_version"] == 2
    assert set(record["qc"]) == {"flags", "doubt", "signals"}  # the QC flags step's entry
    assert {"drug": "rux", "formulation": "tc", "timepoint": "30min"}.items() <= record[
        "metadata"
    ].items()
