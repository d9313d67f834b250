"""QC web speed: the dataset page of a 10,000-image dataset and the image page.

One real result is made by the embedded pipeline, then copied 10,000 times with varied
metadata (artefacts hard-linked, ``result.json`` and ``manifest.json`` rewritten), under
``results/bench-10k/`` of a local store. The service runs under uvicorn on 127.0.0.1;
server time is its ``Server-Timing`` header (median of repeated requests), time to load is
Chromium's navigation timing (``loadEventEnd``). Writes ``bench/results/qc_web.json``.

    python -m bench.qc_web [--images 10000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "qc_web.json"
DATASET = "bench-10k"
TARGET_MS = 300.0
SAMPLES = [f"S{i:02d}" for i in range(1, 13)]
DRUGS = ["none", "rux", "tofa", "bari"]
USERS = ["ana", "bo", "chen", "dara"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def one_real_result(work: Path) -> Path:
    """Analyse one synthetic field with the embedded pipeline; its result folder."""
    from overnight.pipeline.batch import BatchOptions, run_batch
    from overnight.synth.cytometry import write_dataset

    paths = write_dataset(work / "synth", 1, seed=5, size=512)
    out = work / "one"
    run_batch(paths, BatchOptions(pipeline="cytometry-classical", out_url=str(out)))
    return next(p.parent for p in out.glob("*/manifest.json"))


def synthesise(template: Path, root: Path, n: int) -> float:
    """``n`` copies of ``template`` under ``root/results/<DATASET>/``; seconds taken."""
    start = time.perf_counter()
    record = json.loads((template / "result.json").read_text())
    manifest = json.loads((template / "manifest.json").read_text())
    names = [name for name in manifest["artefacts"] if name != "result.json"]
    dataset = root / "results" / DATASET
    for i in range(n):
        clock = f"{i // 60 % 24:02d}{i % 60:02d}"
        image_id = f"20261125_{clock}_{USERS[i % 4]}_darkfield_{SAMPLES[i % 12]}_field-{i:05d}"
        folder = dataset / image_id
        folder.mkdir(parents=True)
        for name in names:
            os.link(template / name, folder / name)
        meta = {
            **record["metadata"],
            "user": USERS[i % 4],
            "sample": SAMPLES[i % 12],
            "drug": DRUGS[(i // 12) % 4],
            "field": f"{i:05d}",
            "time": f"{i // 60 % 24:02d}:{i % 60:02d}:00",
        }
        body = json.dumps({**record, "image_id": image_id, "metadata": meta}, indent=2).encode()
        (folder / "result.json").write_bytes(body)
        prefix = f"results/{DATASET}/{image_id}"
        artefacts = {
            name: {**entry, "key": f"{prefix}/{name}"}
            for name, entry in manifest["artefacts"].items()
        }
        artefacts["result.json"] = {
            "key": f"{prefix}/result.json",
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        (folder / "manifest.json").write_text(
            json.dumps({**manifest, "prefix": prefix, "artefacts": artefacts})
        )
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_ms(url: str) -> tuple[float, float]:
    """(server time from Server-Timing, wall time of the request), both ms."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        header = response.headers.get("Server-Timing", "")
    wall = (time.perf_counter() - start) * 1000
    match = re.search(r"dur=([\d.]+)", header)
    return (float(match.group(1)) if match else float("nan")), wall


def median_ms(urls: list[str]) -> dict[str, float]:
    timings = [server_ms(url) for url in urls]
    server = [t[0] for t in timings]
    return {
        "median_server_ms": round(statistics.median(server), 1),
        "max_server_ms": round(max(server), 1),
        "median_wall_ms": round(statistics.median(t[1] for t in timings), 1),
        "n": len(timings),
    }


def browser_load_ms(urls: list[str]) -> dict[str, float] | None:
    """Median navigation timing in Chromium (response end and load event, ms)."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    loads, responses = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for url in urls:
            page.goto(url, wait_until="load")
            timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            loads.append(timing["loadEventEnd"] - timing["startTime"])
            responses.append(timing["responseEnd"] - timing["startTime"])
        browser.close()
    return {
        "median_load_ms": round(statistics.median(loads), 1),
        "median_response_end_ms": round(statistics.median(responses), 1),
        "n": len(loads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import uvicorn

    from overnight_qc.app import create_app
    from overnight_qc.core.config import QcSettings

    work = Path(tempfile.mkdtemp(prefix="overnight-bench-qc-"))
    try:
        template = one_real_result(work)
        root = work / "store"
        copy_s = synthesise(template, root, args.images)
        settings = QcSettings(storage_url=str(root), api_token="bench", log_level="WARNING")
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}/datasets/{DATASET}"
        ids = sorted(p.name for p in (root / "results" / DATASET).iterdir())

        cold = server_ms(base)  # lists 10,000 folders and reads their result.json
        dataset = median_ms([base] * args.repeats)
        filtered = median_ms(
            [f"{base}?f.sample=S03&f.drug=rux&sort=n_cells&desc=1&page=2"] * args.repeats
        )
        image_cold = median_ms([f"{base}/images/{i}" for i in ids[100 : 100 + args.repeats]])
        image_warm = median_ms([f"{base}/images/{ids[100]}"] * args.repeats)
        stats_cold = server_ms(f"{base}/stats")
        chromium = {
            "dataset_page": browser_load_ms([base] * 5),
            "image_page": browser_load_ms([f"{base}/images/{i}" for i in ids[200:205]]),
        }
        server.should_exit = True
        report = {
            "benchmark": "qc_web",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "system": platform.platform(),
            },
            "n_images": args.images,
            "field_px": 512,
            "target_server_ms": TARGET_MS,
            "synthesise_s": round(copy_s, 2),
            "dataset_page_first_request_ms": round(cold[0], 1),
            "dataset_page_first_page": dataset,
            "dataset_page_filtered_sorted": filtered,
            "image_page_first_visit": image_cold,
            "image_page_again": image_warm,
            "stats_page_first_request_ms": round(stats_cold[0], 1),
            "chromium": chromium,
            "meets_target": dataset["median_server_ms"] <= TARGET_MS
            and image_cold["median_server_ms"] <= TARGET_MS,
            "command": "python -m bench.qc_web",
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
