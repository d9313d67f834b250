"""Shared helpers of the QC service tests (also loaded by ``tests/browser``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.synth.cytometry import write_dataset
from overnight_qc.core.config import QcSettings

N_IMAGES = 6
TOKEN = "qc-test-token"
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
BAD_IMAGE = "20261125_1000_synth_darkfield_S09_field-099"


def drug_of(index: int) -> str:
    """The drug written into image ``index``'s sidecar."""
    return "rux" if index % 2 else "none"


def make_results(base: Path) -> Path:
    """Run the real embedded pipeline once per session; returns the output folder."""
    out = base / "out"
    if (base / "complete").exists():
        return out
    paths = write_dataset(base / "synth", N_IMAGES, seed=11, size=256)
    for index, path in enumerate(paths):
        fields = {"drug": drug_of(index)}
        if index == 2:
            fields["note"] = XSS
        image_id = path.name.removesuffix(".tif")
        (path.parent / f"{image_id}.meta.json").write_text(json.dumps(fields))
    bad = paths[0].parent / f"{BAD_IMAGE}.tif"
    bad.write_bytes(b"this is not a TIFF")
    run_batch([*paths, bad], BatchOptions(pipeline="cytometry-classical", out_url=str(out)))
    (base / "complete").write_text("ok")
    return out


def settings_for(dataset_dir: Path, **changes: object) -> QcSettings:
    """Settings for one output folder, with the test token and no listing cache."""
    values: dict[str, object] = {
        "qc_dataset_dir": dataset_dir,
        "api_token": TOKEN,
        "qc_listing_ttl_s": 0,
        "storage_url": str(dataset_dir),
    }
    values.update(changes)
    return QcSettings(**values)  # type: ignore[arg-type]


def image_ids(results: Path) -> list[str]:
    """Ids of the complete images in an output folder, sorted."""
    return sorted(p.parent.name for p in results.glob("*/manifest.json"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


AUTH = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
