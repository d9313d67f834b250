"""The job functions run by a real RQ worker (in this process) over a real Redis."""

import io
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pydantic import SecretStr
from rq.job import JobStatus as RQStatus

from fixtures_redis import free_port
from overnight.imaging.limits import block_core_px, needs_blocks, working_set_bytes
from overnight.jobs.connection import connect
from overnight.jobs.ids import job_id_for
from overnight.jobs.queues import fetch_job
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import list_images, open_source
from overnight.jobs.state import DatasetRecord, JobBook
from overnight.jobs.status import DatasetState, JobStatus, dataset_state
from overnight.jobs.submit import Submitter
from overnight.jobs.worker import run_worker
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.results.artefacts import RESULT_FILES
from overnight.results.ome_zarr import OME_ZARR_NAME
from overnight.storage import open_store, read_manifest
from overnight.synth.dataset import write_dataset


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Iterator[None]:
    """RQ installs SIGINT/SIGTERM handlers in the worker's process: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def submit(settings: JobSettings, folder: Path) -> tuple[Submitter, DatasetRecord]:
    submitter = Submitter(
        connect(settings.redis_url), open_store(settings.storage_url, settings), settings
    )
    record, _ = submitter.register(folder.as_uri(), "cytometry-classical")
    submitter.enqueue_images(record, list_images(open_source(record.source, settings)))
    return submitter, record


def test_results_are_the_embedded_runs_files_with_one_manifest_each(
    job_settings: JobSettings, nas: Path, tmp_path: Path
) -> None:
    submitter, record = submit(job_settings, nas / "plate1")
    run_worker(job_settings, "all", burst=True)

    book = JobBook(submitter.redis)
    assert dataset_state(book.counts(record.id)) is DatasetState.DONE
    store = open_store(job_settings.storage_url)
    embedded = tmp_path / "embedded"
    run_batch(
        sorted((nas / "plate1").glob("*.tif")),
        BatchOptions(pipeline="cytometry-classical", out_url=str(embedded)),
    )
    for state in book.images(record.id):
        prefix = f"results/{record.id}/{state.image_id}"
        manifest = read_manifest(store, prefix)
        assert manifest is not None
        assert set(manifest.artefacts) == set(RESULT_FILES)
        for table in ("cells.csv", "pnps.csv"):
            assert (
                store.read_bytes(f"{prefix}/{table}")
                == (embedded / state.image_id / table).read_bytes()
            )
    assert [k.key for k in store.list("work/")] == [], "hand-offs are removed once published"
    summary = store.read_bytes(f"results/{record.id}/summary.csv").decode()
    assert len(summary.strip().splitlines()) == 1 + 4


def test_bad_images_fail_at_once_with_their_reason(job_settings: JobSettings, nas: Path) -> None:
    plate = nas / "plate1"
    good = sorted(plate.glob("*.tif"))
    (plate / "empty.tif").write_bytes(b"")
    (plate / "png.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    truncated = good[0].read_bytes()
    (plate / "truncated.tif").write_bytes(truncated[: len(truncated) // 3])
    submitter, record = submit(job_settings, plate)
    run_worker(job_settings, "all", burst=True)

    book = JobBook(submitter.redis)
    states = {s.image_id: s for s in book.images(record.id)}
    assert {i for i, s in states.items() if s.status is JobStatus.FAILED} == {
        "empty",
        "png",
        "truncated",
    }
    assert all(
        s.status is JobStatus.DONE
        for i, s in states.items()
        if i not in {"empty", "png", "truncated"}
    )
    assert "PNG" in states["png"].reason and states["empty"].reason
    assert dataset_state(book.counts(record.id)) is DatasetState.PARTIAL
    job = fetch_job(submitter.redis, job_id_for("segmentation", record.id, "png"))
    assert job is not None and job.retries_left == job_settings.retry_max, (
        "a bad image is never retried"
    )
    assert set(book.enqueue_counts(record.id).values()) == {1}


def test_a_duplicate_delivery_changes_nothing(job_settings: JobSettings, nas: Path) -> None:
    plate = nas / "plate1"
    for extra in sorted(plate.glob("*.tif"))[1:]:
        extra.unlink()
    submitter, record = submit(job_settings, plate)
    run_worker(job_settings, "all", burst=True)
    store = open_store(job_settings.storage_url)
    image_id = JobBook(submitter.redis).images(record.id)[0].image_id
    first = read_manifest(store, f"results/{record.id}/{image_id}")

    # The same message delivered again (a retry after a lost acknowledgement, say).
    seg = fetch_job(submitter.redis, job_id_for("segmentation", record.id, image_id))
    assert seg is not None and seg.get_status() == RQStatus.FINISHED
    from overnight.jobs.tasks import count_image, segment_image

    assert segment_image(seg.args[0]) == "done"
    assert count_image(seg.args[0]) == "done"
    assert read_manifest(store, f"results/{record.id}/{image_id}") == first


def test_a_missing_source_file_fails_without_retry(job_settings: JobSettings, nas: Path) -> None:
    plate = nas / "plate1"
    submitter, record = submit(job_settings, plate)
    victim = sorted(plate.glob("*.tif"))[0]
    shutil.move(victim, nas / victim.name)
    run_worker(job_settings, "all", burst=True)
    book = JobBook(submitter.redis)
    failed = [s for s in book.images(record.id) if s.status is JobStatus.FAILED]
    assert [s.image_key for s in failed] == [victim.name]
    assert failed[0].reason


def test_transient_errors_are_retried_then_fail_with_their_reason(
    job_settings: JobSettings,
) -> None:
    # The images live in a bucket whose S3 endpoint is down: every read is a TransientError.
    settings = job_settings.model_copy(
        update={
            "retry_max": 1,
            "s3_endpoint": f"127.0.0.1:{free_port()}",
            "s3_secure": False,
            "s3_access_key": SecretStr("k"),
            "s3_secret_key": SecretStr("s"),
        }
    )
    redis = connect(settings.redis_url)
    submitter = Submitter(redis, open_store(settings.storage_url, settings), settings)
    record, _ = submitter.register("s3://lab-raw/plate1", "cytometry-classical")
    assert submitter.enqueue_image(record, "field_1.tif")
    run_worker(settings, "all", burst=True)

    state = JobBook(redis).image(record.id, "field_1")
    assert state is not None and state.status is JobStatus.FAILED
    assert state.reason.startswith("gave up after retries: TransientError")
    job = fetch_job(redis, job_id_for("segmentation", record.id, "field_1"))
    assert job is not None and job.get_status() == RQStatus.FAILED and job.retries_left == 0
    assert JobBook(redis).enqueue_counts(record.id) == {"field_1": 1}, (
        "a retry is not a new enqueue"
    )


def test_queue_workers_write_ome_zarr_when_configured(
    job_settings: JobSettings, nas: Path, tmp_path: Path
) -> None:
    settings = job_settings.model_copy(update={"output_format": "ome-zarr"})
    submitter, record = submit(settings, nas / "plate1")
    run_worker(settings, "all", burst=True)

    assert dataset_state(JobBook(submitter.redis).counts(record.id)) is DatasetState.DONE
    store = open_store(settings.storage_url)
    for state in JobBook(submitter.redis).images(record.id):
        prefix = f"results/{record.id}/{state.image_id}"
        manifest = read_manifest(store, prefix)
        assert manifest is not None
        zarr_files = [name for name in manifest.artefacts if name.startswith(OME_ZARR_NAME)]
        assert f"{OME_ZARR_NAME}/labels/cells/zarr.json" in zarr_files, sorted(manifest.artefacts)


def test_an_unreachable_results_store_fails_the_image_instead_of_leaving_it_queued(
    job_settings: JobSettings, nas: Path
) -> None:
    # The results bucket's S3 endpoint is down: the image cannot be published, nor can the
    # dataset's files be written when its last image fails. The failure must still be recorded.
    settings = job_settings.model_copy(
        update={
            "retry_max": 1,
            "storage_url": "s3://results",
            "s3_endpoint": f"127.0.0.1:{free_port()}",
            "s3_secure": False,
            "s3_access_key": SecretStr("k"),
            "s3_secret_key": SecretStr("s"),
        }
    )
    redis = connect(settings.redis_url)
    # Registered while the store was up (the record lands in the local folder), analysed now.
    submitter = Submitter(redis, open_store(job_settings.storage_url), settings)
    record, _ = submitter.register((nas / "plate1").as_uri(), "cytometry-classical")
    image = sorted((nas / "plate1").glob("*.tif"))[0]
    assert submitter.enqueue_image(record, image.name)
    run_worker(settings, "all", burst=True)

    state = JobBook(redis).image(record.id, image.stem)
    assert state is not None and state.status is JobStatus.FAILED, state
    assert "gave up after retries" in state.reason and "S3" in state.reason, state.reason
    assert dataset_state(JobBook(redis).counts(record.id)) is DatasetState.FAILED


def test_a_field_beyond_the_budget_is_analysed_in_blocks_by_the_segmentation_worker(
    job_settings: JobSettings, tmp_path: Path
) -> None:
    # A 1024² field and a budget between one block's estimate and the whole field's: the
    # staged pipeline's first job analyses it block by block, with no hand-off.
    plate = tmp_path / "nas" / "big"
    (field,) = write_dataset(plate, 1, seed=11, size=1024)
    shape, dtype = tifffile.imread(field).shape, np.dtype("uint16")
    shape_zcyx = (shape[0], shape[1], shape[2], shape[3])
    whole = working_set_bytes(shape_zcyx, dtype)
    budget_gb = (whole - 32 * 2**20) / 2**30
    settings = job_settings.model_copy(update={"max_working_set_gb": budget_gb})
    limits = settings.read_limits()
    assert needs_blocks(shape_zcyx, dtype, limits) and block_core_px(shape_zcyx, dtype, limits)

    submitter, record = submit(settings, field.parent)
    run_worker(settings, "all", burst=True)

    book = JobBook(submitter.redis)
    state = book.image(record.id, field.stem)
    assert state is not None and state.status is JobStatus.DONE, state
    store = open_store(settings.storage_url)
    prefix = f"results/{record.id}/{field.stem}"
    assert read_manifest(store, prefix) is not None
    labels = tifffile.imread(io.BytesIO(store.read_bytes(f"{prefix}/labels.tif")))
    assert labels.shape == shape[-2:] and labels.max() > 0
    assert [k.key for k in store.list("work/")] == [], "a field in blocks leaves no hand-off"
