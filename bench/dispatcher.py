"""Dispatcher speed: seconds to create 200 image Jobs against the Kubernetes API server stand-in.

A real ``redis-server`` on a free port, 200 images enqueued as the ingest API does, and the
dispatcher (``max_active_jobs`` = 200, so nothing throttles) creating one ``batch/v1`` Job
per image over real HTTP against the stand-in of ``tests/dispatch/apiserver_standin.py``.
Timed from the dispatcher's start to the 200th Job stored; median of 3 runs. The stand-in
answers in about a millisecond, so this measures the dispatcher's own cost per Job (Redis
claim, manifest, HTTP round trip) — a real API server adds its latency and its
client-side rate limits on top. Writes ``bench/results/dispatcher.json``.

    python -m bench.dispatcher [--jobs 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from kubernetes import client

from overnight.config import load_settings
from overnight.dispatch.settings import DispatchSettings
from overnight.jobs.settings import JobSettings
from overnight.jobs.submit import Submitter
from overnight.storage import ObjectInfo, open_store
from overnight_dispatch.dispatcher import Dispatcher
from overnight_dispatch.kube import KubeJobs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "dispatcher.json"
sys.path.insert(0, str(ROOT / "tests" / "dispatch"))
from apiserver_standin import ApiServerStandIn  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(folder: Path) -> tuple[redis.Redis, str]:
    port = _free_port()
    subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes"]
        + ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        + ["--pidfile", str(folder / "redis.pid"), "--logfile", str(folder / "redis.log")],
        check=True,
    )
    conn = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.ping()
            return conn, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def one_run(n_jobs: int, folder: Path) -> float:
    """Seconds from the dispatcher's start to ``n_jobs`` Jobs stored by the stand-in."""
    conn, url = _start_redis(folder)
    standin = ApiServerStandIn().start()
    store_url = (folder / "store").as_uri()
    try:
        job_settings = load_settings(JobSettings, redis_url=url, storage_url=store_url)
        submitter = Submitter(conn, open_store(store_url, job_settings), job_settings)
        record, _ = submitter.register(None, "cytometry-classical")
        keys = [ObjectInfo(key=f"field_{i:05d}.tif", size=1, mtime=0.0) for i in range(n_jobs)]
        submitter.enqueue_images(record, keys)
        settings = load_settings(
            DispatchSettings, redis_url=url, storage_url=store_url, max_active_jobs=n_jobs
        )
        configuration = client.Configuration()
        configuration.host = standin.url
        api = client.BatchV1Api(client.ApiClient(configuration))
        dispatcher = Dispatcher(settings, conn, KubeJobs(api, settings.job_namespace))
        thread = threading.Thread(target=dispatcher.run, daemon=True)
        start = time.perf_counter()
        thread.start()
        while len(standin.created) < n_jobs:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        dispatcher.stop.set()
        dispatcher.wake.set()
        thread.join(timeout=10)
        assert all(count == 1 for count in standin.created.values())
        return elapsed
    finally:
        standin.stop()
        try:
            conn.shutdown(nosave=True)
        except redis.ConnectionError:
            pass


def main() -> int:
    """Run the benchmark and write ``bench/results/dispatcher.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (make system-deps)")
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(args.jobs, Path(tmp)))
    median_s = statistics.median(runs)
    result = {
        "what": f"create {args.jobs} image Jobs against the Kubernetes API server stand-in",
        "command": f"python -m bench.dispatcher --jobs {args.jobs} --repeats {args.repeats}",
        "jobs": args.jobs,
        "runs_s": [round(r, 3) for r in runs],
        "median_s": round(median_s, 3),
        "jobs_per_s": round(args.jobs / median_s, 1),
        "note": "stand-in answers in ~1 ms; a real API server adds its latency and rate limits",
        "machine": f"{platform.machine()}, {platform.python_version()}, 2 shared cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
