"""The optional notebook (``docker-compose --profile notebook``), for real, on the stack.

The session's compose stack (the one the other modules leave, or a fresh one when this
module runs alone) with its workers: a small dataset of generated fields with metadata
sidecars goes through ingest and the workers, then the ``notebook`` service starts as
``docker-compose.yml`` defines it (the bucket's ``results/`` and the S3 settings of the
services, the token from ``.env``) and ``examples/results.ipynb`` runs inside its container
on that dataset's results in the store (``jupyter nbconvert --execute``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from compose_stack import (  # type: ignore[import-not-found]
    ROOT,
    VERSION,
    Images,
    Stack,
    synth_fields,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

IMAGE = f"overnight/notebook:{VERSION}"
NOTEBOOK = "/home/overnight/examples/results.ipynb"
#: drug, formulation, sample, depth_um of each field (tests/examples/test_results_notebook.py).
CONDITIONS = [
    ("rux", "lipo", "s1", 5),
    ("rux", "lipo", "s1", 20),
    ("none", "free", "s2", 5),
    ("none", "free", "s2", 20),
]
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def report(images: Images, stack: Stack) -> Any:
    """Merge this module's figures into ``$OVERNIGHT_DEPLOY_REPORT`` under ``notebook``; then
    stop and remove the notebook container (the other modules count the stack's services)."""
    yield
    stack.compose("--profile", "notebook", "rm", "-s", "-f", "notebook", check=False)
    FIGURES["image_build_s"] = images.build_s.get("notebook")
    FIGURES["image_size_mb"] = stack.docker.size_mb(IMAGE)
    target = os.environ.get("OVERNIGHT_DEPLOY_REPORT")
    if target:
        path = Path(target)
        figures = json.loads(path.read_text()) if path.exists() else {}
        figures["notebook"] = FIGURES
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def api_status(stack: Stack, token: str | None) -> int | None:
    """HTTP status of the notebook server's ``/api/status`` (None while nothing answers)."""
    params = {"token": token} if token is not None else {}
    try:
        reply = httpx.get(
            f"http://127.0.0.1:{stack.notebook_port}/api/status", params=params, timeout=10
        )
    except httpx.HTTPError:
        return None
    return reply.status_code


def test_notebook_refuses_to_start_without_a_token(stack: Stack) -> None:
    """Compose refuses a ``.env`` without the token; the image refuses an empty one."""
    env_file = stack.workdir / "notebook-no-token.env"
    lines = stack.env_file.read_text().splitlines()
    env_file.write_text(
        "\n".join(line for line in lines if not line.startswith("OVERNIGHT_API_TOKEN=")) + "\n"
    )
    argv = [
        "docker-compose",
        "--project-directory",
        str(ROOT),
        "--env-file",
        str(env_file),
        "-f",
        str(ROOT / "docker-compose.yml"),
        "--profile",
        "notebook",
        "config",
        "-q",
    ]
    proc = subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "OVERNIGHT_API_TOKEN" in proc.stderr, proc.stderr

    # The image without compose: an empty JUPYTER_TOKEN ends it before Jupyter starts (Jupyter
    # itself would make up a random token and serve).
    proc = stack.docker.run(
        "run", "--rm", "-e", "JUPYTER_TOKEN=", IMAGE, check=False, timeout_s=120
    )
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "JUPYTER_TOKEN is empty" in proc.stderr, proc.stderr
    assert "Jupyter Server" not in proc.stdout + proc.stderr
    # Nothing of the stack's secrets is baked in; it runs as the non-root user.
    history = stack.docker.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE).stdout
    config = stack.docker.run("image", "inspect", "-f", "{{json .Config}}", IMAGE).stdout
    assert stack.token not in history + config and "JUPYTER_TOKEN=" not in history + config
    assert json.loads(config)["User"] == "10001:10001"


def results_dataset(stack: Stack, tmp_path: Path) -> str:
    """Four generated fields with metadata sidecars, analysed by the stack's workers."""
    stack.compose("up", "-d", "--no-build")
    wait_for(stack.all_healthy, 300, "every service healthy", every_s=1)
    fields = synth_fields(tmp_path / "synth", len(CONDITIONS), seed=6, size=256)
    sidecars = []  # <image_id>.meta.json: overnight.metadata reads them beside the image
    for path, (drug, formulation, sample, depth) in zip(fields, CONDITIONS, strict=True):
        sidecar = path.with_name(path.name.removesuffix(".tif") + ".meta.json")
        sidecar.write_text(json.dumps(
            {"drug": drug, "formulation": formulation, "sample": sample, "depth_um": depth}
        ))  # fmt: skip
        sidecars.append(sidecar)
    stack.put_in_nas(fields + sidecars, "notebook")
    dataset_id = stack.submit_folder("notebook")

    def done() -> dict[str, Any] | None:
        info = stack.dataset(dataset_id)
        assert info["counts"].get("failed", 0) == 0, info.get("failures")
        return info if info["state"] == "done" else None

    info = wait_for(done, 900, "the notebook's dataset done", every_s=2)
    assert info["counts"]["done"] == len(CONDITIONS), info
    return dataset_id


def test_notebook_runs_results_ipynb_on_the_stacks_results(stack: Stack, tmp_path: Path) -> None:
    dataset_id = results_dataset(stack, tmp_path)
    started = time.monotonic()
    stack.compose("--profile", "notebook", "up", "-d", "--no-build", "notebook")
    wait_for(lambda: api_status(stack, stack.token) == 200, 180, "the notebook's /api/status")
    FIGURES["seconds_to_api"] = round(time.monotonic() - started, 1)
    assert api_status(stack, None) == 403, "the notebook server answers without the token"
    assert api_status(stack, "not-the-token-0000") == 403
    (container,) = stack.containers("notebook")
    info = stack.docker.inspect(container)[0]
    assert info["Config"]["User"] == "10001:10001"
    wait_for(
        lambda: stack.docker.inspect(container)[0]["State"]["Health"]["Status"] == "healthy",
        120,
        "the notebook container healthy",
        every_s=1,
    )

    started = time.monotonic()
    proc = stack.docker.run(
        "exec", "-e", f"OVERNIGHT_DATASET={dataset_id}", container,
        "jupyter", "nbconvert", "--to", "notebook", "--execute",
        "--ExecutePreprocessor.timeout=300", "--output-dir", "/tmp", "--output", "executed",
        NOTEBOOK, check=False, timeout_s=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    FIGURES["notebook_run_s"] = round(time.monotonic() - started, 1)
    executed = stack.docker.run("exec", container, "cat", "/tmp/executed.ipynb").stdout
    notebook = nbformat.reads(executed, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{len(CONDITIONS)} images" in text and "cells treated with rux" in text, text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 1, "the Poisson comparison (no PK results in the store: no PK plot)"
    tables = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "lipo" in tables and "depth_um" in tables, tables
