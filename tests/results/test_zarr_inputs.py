"""OME-Zarr folders as inputs of the runners: found in a folder and in S3, analysed like a TIFF."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from counting_store import CountingStore
from overnight.imaging.files import scan_folder
from overnight.imaging.reader import read_stack
from overnight.jobs.sources import image_id_of, list_source
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import ome_zarr_files
from overnight.storage import open_store
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


def test_a_zarr_folder_on_s3_is_listed_once_and_read_without_a_copy(tmp_path, new_s3_store) -> None:
    source = new_s3_store("nas")
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


def _write_tczyx(path: Path, data: np.ndarray) -> Path:
    """An NGFF 0.4 TCZYX image (Zarr v2, one chunk per plane)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    chunks = (1, 1, 1, *data.shape[-2:])
    root.create_array("0", shape=data.shape, chunks=chunks, dtype=data.dtype)[...] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = [1.0, 1.0, 1.0, 0.5, 0.5]
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
            ],
        }
    ]
    return path


def test_each_timepoint_of_a_zarr_is_an_image_locally_and_in_s3(tmp_path, new_s3_store) -> None:
    tiff, _ = _field_as_zarr(tmp_path)
    field = read_stack(tiff).data.transpose(1, 0, 2, 3)  # CZYX
    data = tmp_path / "data"
    store_dir = _write_tczyx(data / "movie.ome.zarr", np.stack([field, field[:, :, ::-1]]))
    out = tmp_path / "out"
    options = BatchOptions(pipeline=PIPELINE, out_url=str(out), dataset_dir=data)
    outcomes = run_batch(scan_folder(data).images, options)
    assert [(o.image_id, o.status) for o in outcomes] == [
        ("movie~t000", "done"),
        ("movie~t001", "done"),
    ]
    assert outcomes[0].n_cells == outcomes[1].n_cells > 0, "the same field, flipped in Y"
    s3 = new_s3_store("")
    for path in sorted(p for p in store_dir.rglob("*") if p.is_file()):
        key = f"movie.ome.zarr/{path.relative_to(store_dir).as_posix()}"
        s3.write_bytes(key, path.read_bytes())
    counting = CountingStore(s3)
    keys = [info.key for info in list_source(counting).images]  # type: ignore[arg-type]
    assert keys == ["movie.ome.zarr#t000", "movie.ome.zarr#t001"]
    chunks = [k for k in counting.reads if k.rsplit("/", 1)[-1][:1].isdigit()]
    assert counting.reads and not chunks, "listing reads the metadata, never a chunk"
