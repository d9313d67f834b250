from pathlib import Path

import pytest

from overnight.errors import ConfigError, UnsafeKeyError
from overnight.jobs.connection import connect
from overnight.jobs.queues import stage_queue
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import list_images, open_source
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus
from overnight.jobs.submit import Submitter
from overnight.storage import open_store


def submitter_for(settings: JobSettings) -> Submitter:
    return Submitter(
        connect(settings.redis_url), open_store(settings.storage_url, settings), settings
    )


def test_submitting_a_folder_twice_enqueues_each_image_once(
    job_settings: JobSettings, nas: Path
) -> None:
    submitter = submitter_for(job_settings)
    source = (nas / "plate1").as_uri()
    record, created = submitter.register(source, "cytometry-classical", {"operator": "ab"})
    again, created_again = submitter.register(source + "/", "cytometry-classical")
    assert created and not created_again and again.id == record.id
    images = list_images(open_source(record.source, job_settings))
    assert len(submitter.enqueue_images(record, images)) == 4
    assert submitter.enqueue_images(again, images) == []
    assert stage_queue(submitter.redis, "segmentation").count == 4
    assert set(JobBook(submitter.redis).enqueue_counts(record.id).values()) == {1}
    dataset_json = open_store(job_settings.storage_url).read_bytes(
        f"results/{record.id}/dataset.json"
    )
    assert b'"n_images": 4' in dataset_json and b'"operator": "ab"' in dataset_json


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc",
        "file:///NAS/../etc",
        "file://relative/path",
        "file:///tmp/x\x00y",
        "ftp://host/x",
        "file:///a\\..\\b",
    ],
)
def test_sources_outside_the_nas_roots_are_refused(job_settings: JobSettings, source: str) -> None:
    with pytest.raises((UnsafeKeyError, ConfigError)):
        submitter_for(job_settings).register(source, "cytometry-classical")


def test_a_symlink_out_of_the_nas_root_is_refused(
    job_settings: JobSettings, nas: Path, tmp_path: Path
) -> None:
    (nas / "escape").symlink_to(tmp_path)
    with pytest.raises(UnsafeKeyError, match="outside the allowed roots"):
        submitter_for(job_settings).register((nas / "escape").as_uri(), "cytometry-classical")


def test_an_unknown_pipeline_is_refused(job_settings: JobSettings, nas: Path) -> None:
    with pytest.raises(ConfigError):
        submitter_for(job_settings).register((nas / "plate1").as_uri(), "no-such-pipeline")


@pytest.mark.parametrize("pipeline", ["/etc/passwd", "../../../../etc/passwd", "/etc/hostname"])
def test_a_pipeline_path_is_never_opened_nor_echoed(
    job_settings: JobSettings, nas: Path, pipeline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a request names a built-in pipeline; a file path is refused unread."""
    opened: list[str] = []
    real_open = Path.read_text

    def spy(self: Path, *args: object, **kwargs: object) -> str:
        opened.append(str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", spy)
    with pytest.raises(ConfigError) as refused:
        submitter_for(job_settings).register((nas / "plate1").as_uri(), pipeline)
    assert "root:" not in str(refused.value) and "not a built-in" in str(refused.value)
    assert not any(path.startswith("/etc") for path in opened)
    assert JobBook(connect(job_settings.redis_url)).dataset_ids() == []


def test_retry_requeues_failed_images_only(job_settings: JobSettings, nas: Path) -> None:
    submitter = submitter_for(job_settings)
    record, _ = submitter.register((nas / "plate1").as_uri(), "cytometry-classical")
    images = list_images(open_source(record.source, job_settings))
    submitter.enqueue_images(record, images)
    book = JobBook(submitter.redis)
    first, second = (s.image_id for s in book.images(record.id)[:2])
    book.set_status(record.id, first, JobStatus.FAILED, "unreadable")
    book.set_status(record.id, second, JobStatus.DONE)
    assert submitter.retry_failed(record) == [first]
    assert book.image(record.id, first).status is JobStatus.QUEUED
    assert book.enqueue_counts(record.id)[first] == 1, (
        "its job was still pending: not enqueued twice"
    )
    assert not book.set_status(record.id, second, JobStatus.READING), "a done image must stay done"
