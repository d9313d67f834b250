import pytest

from overnight.errors import ConfigError, UnsafeKeyError
from overnight.jobs.ids import dataset_id_for, job_id_for, upload_dataset_id
from overnight.jobs.payload import ImageJob
from overnight.storage import validate_id


def test_dataset_id_is_stable_and_ignores_a_trailing_slash() -> None:
    first = dataset_id_for("file:///nas/lab/plate 7", "cytometry")
    assert first == dataset_id_for("file:///nas/lab/plate 7/", "cytometry")
    assert first.startswith("plate-7-")
    assert first != dataset_id_for("file:///nas/lab/plate 7", "cytometry-classical")
    assert first != dataset_id_for("file:///nas/other/plate 7", "cytometry")
    assert validate_id(first) == first


def test_job_ids_are_deterministic_per_stage_and_image() -> None:
    seg = job_id_for("segmentation", "ds1", "img1")
    assert seg == job_id_for("segmentation", "ds1", "img1")
    assert seg.startswith("seg-") and job_id_for("counting", "ds1", "img1").startswith("pnp-")
    assert seg != job_id_for("segmentation", "ds1", "img2")
    assert seg != job_id_for("segmentation", "ds2", "img1")


def test_upload_datasets_get_fresh_ids() -> None:
    assert upload_dataset_id("upload") != upload_dataset_id("upload")


def test_payload_round_trips_as_json_and_refuses_unknown_versions() -> None:
    job = ImageJob(dataset_id="ds1", image_id="img1", image_key="a/img1.tif", pipeline="cytometry")
    data = job.to_json()
    assert data["version"] == 1
    assert ImageJob.from_json(data) == job
    assert job.result_prefix == "results/ds1/img1"
    with pytest.raises(ConfigError, match="version 2"):
        ImageJob.from_json({**data, "version": 2})


@pytest.mark.parametrize(
    "field,value", [("image_key", "../etc/passwd"), ("dataset_id", "../x"), ("image_id", "a/b")]
)
def test_payload_refuses_unsafe_ids_and_keys(field: str, value: str) -> None:
    data = {
        "dataset_id": "ds1",
        "image_id": "img1",
        "image_key": "img1.tif",
        "pipeline": "p",
        field: value,
    }
    with pytest.raises((UnsafeKeyError, ConfigError)):
        ImageJob.model_validate(data)
