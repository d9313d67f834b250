"""Full stack against the embedded run, 1 vs 2 workers, and the watcher's landing latency.

- **Throughput**: the same synthetic dataset (512², 12 Z, 2 channels, like ``bench.embedded``)
  analysed by the embedded run (``run_batch`` with W processes) and by the stack (own
  redis-server, ingest API under uvicorn, warm workers), timed from ``POST /datasets`` to the
  dataset's state ``done``. The orchestration overhead compares the same number of processes:
  W ``overnight worker all`` (both stages) against W embedded processes (target: within 15 %);
  the service layout, W segmentation + W pnp-counter workers, is reported beside it.
- **Landing latency**: ``overnight ingest watch`` polling every ``interval`` s with a stability
  wait of ``stable`` s; files land by rename (as a copy tool's temp-then-rename does) at random
  moments; latency = land → image enqueued. With a fresh mtime the stability wait applies;
  with a preserved old mtime (``cp -p``, ``rsync -t``) the first scan takes it.

JSON to ``bench/results/stack.json``.

    python -m bench.stack [--fields 24] [--size 512] [--workers 1 2] [--interval 2] [--stable 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-token-0123456789abcdef"
PIPELINE = "cytometry-classical"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def overnight(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("overnight")), *args]


def wait_until(condition: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out waiting for {what}")


def make_dataset(folder: Path, n_fields: int, size: int) -> Path:
    from overnight.synth.dataset import write_dataset
    from overnight.synth.ranges import CytometryRanges

    write_dataset(folder, n_fields, 2024, size=size, ranges=CytometryRanges(n_z=(12, 12)))
    return folder / "images"


@contextmanager
def processes(log_dir: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with (log_dir / f"{name}-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_redis(start: Any, folder: Path) -> str:
    import redis

    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    start(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        dict(os.environ),
        "redis",
    )
    client = redis.Redis(port=port)
    wait_until(lambda: _ping(client), 20, "redis-server")
    return f"redis://127.0.0.1:{port}/0"


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def service_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERNIGHT_")}
    env.update({f"OVERNIGHT_{k.upper()}": v for k, v in settings.items()})
    return env


def embedded_run(images: Path, workers: int, out: Path) -> float:
    """Wall time (s) of the embedded run, in a fresh subprocess (as a user runs it)."""
    code = (
        "import sys, time; from pathlib import Path;"
        "from overnight.imaging import find_images;"
        "from overnight.pipeline.batch import BatchOptions, run_batch;"
        f"paths = find_images(Path({str(images)!r}));"
        "t = time.perf_counter();"
        f"options = BatchOptions(pipeline={PIPELINE!r}, out_url={str(out)!r}, force=True);"
        f"o = run_batch(paths, options, {workers});"
        "print(time.perf_counter() - t, sum(x.status != 'done' for x in o))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    wall, failed = result.stdout.split()
    if int(failed):
        raise RuntimeError(f"embedded run: {failed} images failed")
    return float(wall)


def stack_run(images: Path, workers: int, work: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Wall time (s) from POST /datasets to state done, with warm workers; and stage timings."""
    import httpx
    import redis

    from overnight.jobs.state import JobBook

    with processes(work) as start:
        redis_url = start_redis(start, work / "redis")
        env = service_env(
            redis_url=redis_url,
            storage_url=(work / "store").as_uri(),
            nas_root=str(images.parent),
            pipeline=PIPELINE,
            api_token=TOKEN,
            log_level="WARNING",
        )
        port = free_port()
        start(overnight("ingest", "serve", "--port", str(port)), env, "api")
        for kind in kinds:
            for _ in range(workers):
                start(overnight("worker", kind), env, kind)
        client = redis.Redis.from_url(redis_url)
        expected = len(kinds) * workers
        wait_until(lambda: client.scard("rq:workers") >= expected, 120, "the workers to register")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        wait_until(lambda: _healthy(api), 60, "the API")
        started = time.perf_counter()
        answer = api.post(
            "/datasets",
            json={"source": images.as_uri(), "pipeline": PIPELINE},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        answer.raise_for_status()
        dataset_id = answer.json()["id"]
        status = wait_until(lambda: _finished(api, dataset_id), 3600, "the dataset", interval_s=0.1)
        wall = time.perf_counter() - started
        if status["state"] != "done":
            raise RuntimeError(f"stack run ended {status['state']}: {status['failures']}")
        durations = JobBook(client).durations()
    return {
        "wall_s": round(wall, 2),
        "job_seconds_mean": {
            stage: round(total / count, 3) for stage, (count, total) in durations.items()
        },
    }


def _healthy(api: Any) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except Exception:
        return False


def _finished(api: Any, dataset_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = api.get(f"/datasets/{dataset_id}").json()
    return status if status["state"] in ("done", "failed", "partial") else None


def landing_latency(
    sample: Path, work: Path, interval_s: float, stable_s: float, n_files: int
) -> dict[str, Any]:
    """Seconds from a file landing (rename into the folder) to its image being enqueued."""
    import redis

    from overnight.jobs.ids import dataset_id_for
    from overnight.jobs.state import JobBook

    watched = work / "nas" / "incoming"
    watched.mkdir(parents=True)
    results: dict[str, list[float]] = {"fresh_mtime": [], "preserved_mtime": []}
    with processes(work) as start:
        redis_url = start_redis(start, work / "redis")
        env = service_env(
            redis_url=redis_url,
            storage_url=(work / "store").as_uri(),
            nas_root=str(work / "nas"),
            pipeline=PIPELINE,
            watch_sources=watched.as_uri(),
            watch_interval_s=str(interval_s),
            watch_stable_s=str(stable_s),
            log_level="WARNING",
        )
        start(overnight("ingest", "watch"), env, "watcher")
        book = JobBook(redis.Redis.from_url(redis_url))
        dataset_id = dataset_id_for(watched.as_uri(), PIPELINE)
        wait_until(lambda: book.dataset(dataset_id), 60, "the watcher's first scan")
        rng = random.Random(7)
        for index in range(n_files):
            for kind in results:
                time.sleep(rng.uniform(0, interval_s))
                name = f"{kind}_{index:02d}"
                staging = watched / f".{name}.tif.part"
                shutil.copy(sample, staging)
                if kind == "preserved_mtime":
                    old = time.time() - 3600
                    os.utime(staging, (old, old))
                os.replace(staging, watched / f"{name}.tif")
                landed = time.monotonic()
                wait_until(
                    lambda n=name: book.image(dataset_id, n), 60, f"{name} to be enqueued", 0.01
                )
                results[kind].append(time.monotonic() - landed)
    return {
        kind: {"median_s": round(statistics.median(v), 2), "max_s": round(max(v), 2), "n": len(v)}
        for kind, v in results.items()
    } | {"interval_s": interval_s, "stable_s": stable_s, "target_max_s": interval_s + 2}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fields", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--stable", type=float, default=1.0)
    parser.add_argument("--landings", type=int, default=6)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("bench.stack needs redis-server (make system-deps)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        root = Path(tmp)
        images = make_dataset(root / "data", args.fields, args.size)
        configurations = {}
        for workers in args.workers:
            embedded_s = embedded_run(images, workers, root / f"embedded-{workers}")
            same = stack_run(images, workers, root / f"stack-all-{workers}", ("all",))
            split = stack_run(images, workers, root / f"stack-{workers}", ("segmentation", "pnp"))
            configurations[str(workers)] = {
                "workers": workers,
                "embedded_wall_s": round(embedded_s, 2),
                "embedded_images_per_min": round(60 * args.fields / embedded_s, 1),
                "stack_same_processes_wall_s": same["wall_s"],
                "overhead_ratio": round(same["wall_s"] / embedded_s, 3),
                "stack_split_wall_s": split["wall_s"],
                "split_ratio": round(split["wall_s"] / embedded_s, 3),
                "stack_split_images_per_min": round(60 * args.fields / split["wall_s"], 1),
                "stack_split_job_seconds_mean": split["job_seconds_mean"],
            }
            print(json.dumps(configurations[str(workers)]), file=sys.stderr)
        sample = sorted(images.glob("*.tif"))[0]
        latency = landing_latency(
            sample, root / "latency", args.interval, args.stable, args.landings
        )
    report = {
        "benchmark": "stack vs embedded run",
        "dataset": f"{args.fields} synthetic fields, {args.size}² px, 12 Z, 2 channels, uint16",
        "pipeline": PIPELINE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "overhead_ratio: stack with W 'overnight worker all' processes (both stages) "
        "against W embedded processes, the same CPU budget; split_ratio: the service layout, W "
        "segmentation + W pnp-counter workers (2W processes, the stages overlap). Timed from "
        "POST /datasets to state done, workers warm; Redis without persistence",
        "configurations": configurations,
        "landing_latency": latency,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stack.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
