"""OME-Zarr folders as inputs of the runners: found in a folder and in S3, analysed like a TIFF."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from minio import Minio

from overnight.imaging.files import scan_folder
from overnight.imaging.reader import read_stack
from overnight.jobs.sources import image_id_of, list_source
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import ome_zarr_files
from overnight.storage import S3Store, open_store
from overnight.synth.dataset import write_dataset

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="needs zarr (overnight[formats])"
)
PIPELINE = "cytometry-classical"


def _field_as_zarr(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A synthetic field as a TIFF, and the same pixels as NGFF 0.5 files."""
    tiff = write_dataset(tmp_path / "synth", 1, seed=21, size=192)[0]
    stack = read_stack(tiff)
    files = ome_zarr_files(
        stack.data,
        stack.data[0, 0] * 0,
        name="f",
        pixel_size_um=stack.pixel_size_um,
        z_step_um=stack.z_step_um,
    )
    return tiff, {k: v for k, v in files.items() if not k.startswith("labels/")}


def test_a_zarr_folder_is_one_image_of_an_embedded_run(tmp_path) -> None:
    tiff, files = _field_as_zarr(tmp_path)
    data = tmp_path / "data"
    for key, body in files.items():
        (data / "plate" / "f.ome.zarr" / key).parent.mkdir(parents=True, exist_ok=True)
        (data / "plate" / "f.ome.zarr" / key).write_bytes(body)
    assert scan_folder(data).images == [data / "plate" / "f.ome.zarr"], "not searched inside"
    out = tmp_path / "out"
    options = BatchOptions(pipeline=PIPELINE, out_url=str(out), dataset_dir=data)
    [zarr_outcome] = run_batch(scan_folder(data).images, options)
    [tiff_outcome] = run_batch([tiff], BatchOptions(pipeline=PIPELINE, out_url=str(out)))
    assert (zarr_outcome.image_id, zarr_outcome.status) == ("plate~2Ff", "done")
    assert zarr_outcome.n_cells == tiff_outcome.n_cells > 0
    assert zarr_outcome.n_pnps == tiff_outcome.n_pnps


def test_a_zarr_folder_on_s3_is_listed_once_and_read_without_a_copy(tmp_path, s3_endpoint) -> None:
    client = Minio(
        s3_endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1"
    )
    bucket = f"z-{uuid.uuid4().hex[:12]}"
    client.make_bucket(bucket)
    source = S3Store(bucket, "nas", client)
    tiff, files = _field_as_zarr(tmp_path)
    for key, body in files.items():
        source.write_bytes(f"drug-rux/f.ome.zarr/{key}", body)
    source.write_bytes("drug-rux/notes.txt", b"not an image")
    listing = list_source(source)
    assert [info.key for info in listing.images] == ["drug-rux/f.ome.zarr"]
    assert listing.images[0].size == sum(len(b) for b in files.values())
    image_id = image_id_of("drug-rux/f.ome.zarr")
    assert image_id == "drug-rux~2Ff"
    prepared = PreparedPipeline(load_pipeline(PIPELINE))
    results = DatasetResults(open_store(str(tmp_path / "out")))
    remote = ImageSource("drug-rux/f.ome.zarr", source, id=image_id)
    result = analyse_image(remote, prepared, results)
    assert result is not None and result.metadata["drug"] == "rux"
    assert result.acquisition["file_format"] == "ome-zarr"
    local = analyse_image(ImageSource.file(tiff), prepared, results)
    assert local is not None and result.summary["n_cells"] == local.summary["n_cells"] > 0
