"""Discrete-event simulation of the Kubernetes scale-out: one Job per image (or per K images).

Pure Python (heapq), no cluster needed; ``make bench-cluster`` runs it in a few seconds and
writes ``bench/results/cluster.json`` and ``bench/results/cluster.md``.

    python -m bench.cluster [--seconds-per-image S] [--quick]

What is simulated
-----------------
* A cluster of ``nodes`` worker nodes with ``cores_per_node`` cores; one image pod requests
  one core (the chart's default ``job.resources``), so a node runs at most that many pods.
* The dispatcher keeps at most ``max_active`` Jobs alive and creates them one after the
  other (``job_create_s`` each: API round trip); a new Job is created only while the queue
  holds more images than the alive pods will still take. Pods wait (Pending) for a free core;
  the scheduler puts a pod on the node with the most free cores (kube-scheduler's default
  LeastAllocated spreading) after ``schedule_s``.
* The first pod on a node pulls the image (``image_pull_s``, ~1.6 GB with TensorFlow); pods
  that land there meanwhile wait for that pull. Every pod then pays the container start
  (``pod_start_s``) and the model load (``model_load_s``).
* A pod takes images from the shared queue one at a time, up to ``images_per_pod`` (K), and
  exits when it has done K or the queue is empty (``overnight worker drain --max-images K``;
  K = 1 is ``overnight worker run-image``).
* Per-image time is log-normal around the measured median (sigma 0.25, seeded): fields
  differ in cell count and size. The baseline is one serial container on one core: one
  pull, one start, one model load, then every image in turn.

The per-image median comes from ``bench/results/embedded.json`` (``seconds_per_image_median``,
written by ``make bench``) when present, else the documented default of 6 s per 512² field
(12 Z slices, 2 channels, on one core of the 2-core development machine).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
EMBEDDED_RESULTS = RESULTS / "embedded.json"
#: Used when no embedded benchmark result exists: seconds per 512² field on one core.
DEFAULT_SECONDS_PER_IMAGE = 6.0
#: Images per pod tried when looking for the best K.
K_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Overheads:
    """Seconds of Kubernetes overhead around the per-image work (see the module doc)."""

    image_pull_s: float = 30.0
    pod_start_s: float = 3.0
    model_load_s: float = 4.0
    job_create_s: float = 0.05
    schedule_s: float = 1.0


NO_OVERHEADS = Overheads(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Cluster:
    """Worker nodes that run image pods (control-plane nodes are not counted)."""

    nodes: int
    cores_per_node: int

    @property
    def cores(self) -> int:
        """Pods that can run at once (one core each)."""
        return self.nodes * self.cores_per_node


@dataclass(frozen=True)
class SimResult:
    """Outcome of one simulated run."""

    n_images: int
    images_per_pod: int
    max_active: int
    makespan_s: float
    pods: int
    images_per_hour: float
    core_busy_fraction: float  # share of core-seconds spent on images


@dataclass
class _Pod:
    node: int = -1
    taken: int = 0
    started: bool = False


@dataclass(order=True)
class _Event:
    time_s: float
    seq: int
    kind: str = field(compare=False)
    pod: int = field(compare=False, default=-1)


def image_times(n_images: int, median_s: float, sigma: float = 0.25, seed: int = 1) -> list[float]:
    """Per-image processing seconds, log-normal around ``median_s`` (sigma 0 = all equal)."""
    rng = random.Random(seed)
    return [
        median_s * math.exp(rng.gauss(0.0, sigma)) if sigma else median_s for _ in range(n_images)
    ]


def serial_makespan_s(times: list[float], overheads: Overheads) -> float:
    """One container processing every image in turn: one pull, start and model load."""
    return overheads.image_pull_s + overheads.pod_start_s + overheads.model_load_s + sum(times)


def simulate(
    times: list[float],
    cluster: Cluster,
    overheads: Overheads,
    max_active: int,
    images_per_pod: int = 1,
) -> SimResult:
    """Run the event loop until every image is done; see the module doc for the model."""
    if max_active < 1 or images_per_pod < 1:
        raise ValueError("max_active and images_per_pod must be at least 1")
    queue = deque(times)
    events: list[_Event] = []
    seq = 0

    def push(time_s: float, kind: str, pod: int = -1) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, _Event(time_s, seq, kind, pod))

    free = [cluster.cores_per_node] * cluster.nodes
    # Max-heap of (-free cores, node) with stale entries skipped: the emptiest node first.
    emptiest = [(-cluster.cores_per_node, node) for node in range(cluster.nodes)]
    heapq.heapify(emptiest)
    pulled_at: list[float | None] = [None] * cluster.nodes
    pods: list[_Pod] = []
    pending: deque[int] = deque()  # created pods waiting for a core
    alive = 0  # Jobs created and not finished
    promised = 0  # images the alive pods will still take (K minus what each has taken)
    dispatcher_free_at = 0.0
    busy_s = 0.0
    now = 0.0

    def dispatch(now: float) -> None:
        nonlocal alive, dispatcher_free_at, promised
        while alive < max_active and len(queue) > promised:
            dispatcher_free_at = max(dispatcher_free_at, now) + overheads.job_create_s
            pods.append(_Pod())
            alive += 1
            promised += images_per_pod
            push(dispatcher_free_at, "created", len(pods) - 1)

    def bind(now: float) -> None:
        while pending:
            while emptiest and -emptiest[0][0] != free[emptiest[0][1]]:
                heapq.heappop(emptiest)  # stale entry
            if not emptiest or free[emptiest[0][1]] == 0:
                return
            node = heapq.heappop(emptiest)[1]
            pod_id = pending.popleft()
            free[node] -= 1
            heapq.heappush(emptiest, (-free[node], node))
            pods[pod_id].node = node
            if pulled_at[node] is None:
                pulled_at[node] = now + overheads.schedule_s + overheads.image_pull_s
            image_ready = max(now + overheads.schedule_s, pulled_at[node] or 0.0)
            push(image_ready + overheads.pod_start_s + overheads.model_load_s, "ready", pod_id)

    def next_image(now: float, pod_id: int) -> None:
        nonlocal busy_s, alive, promised
        pod = pods[pod_id]
        if queue and pod.taken < images_per_pod:
            seconds = queue.popleft()
            pod.taken += 1
            promised -= 1
            busy_s += seconds
            push(now + seconds, "image_done", pod_id)
            return
        free[pod.node] += 1
        heapq.heappush(emptiest, (-free[pod.node], pod.node))
        promised -= images_per_pod - pod.taken
        pod.node = -2  # finished
        alive -= 1
        bind(now)
        dispatch(now)

    dispatch(0.0)
    while events:
        event = heapq.heappop(events)
        now = event.time_s
        if event.kind == "created":
            pending.append(event.pod)
            bind(now)
        elif event.kind in {"ready", "image_done"}:
            next_image(now, event.pod)
    if queue:
        raise RuntimeError(f"simulation ended with {len(queue)} images left")  # a model bug
    makespan = now
    return SimResult(
        n_images=len(times),
        images_per_pod=images_per_pod,
        max_active=max_active,
        makespan_s=round(makespan, 3),
        pods=len(pods),
        images_per_hour=round(3600 * len(times) / makespan, 1) if makespan else math.inf,
        core_busy_fraction=round(busy_s / (makespan * cluster.cores), 3) if makespan else 1.0,
    )


def scan_k(
    times: list[float], cluster: Cluster, overheads: Overheads, max_active: int
) -> list[SimResult]:
    """Simulate every K in :data:`K_CANDIDATES` up to the number of images per core."""
    limit = max(1, math.ceil(len(times) / cluster.cores))
    candidates = [k for k in K_CANDIDATES if k <= limit] or [1]
    return [simulate(times, cluster, overheads, max_active, k) for k in candidates]


def seconds_per_image() -> tuple[float, str]:
    """The per-image median and where it came from."""
    if EMBEDDED_RESULTS.is_file():
        report = json.loads(EMBEDDED_RESULTS.read_text())
        value = report.get("seconds_per_image_median")
        if isinstance(value, int | float) and value > 0:
            return float(value), f"{EMBEDDED_RESULTS.name}: seconds_per_image_median"
    return DEFAULT_SECONDS_PER_IMAGE, "default (no bench/results/embedded.json): 6 s per 512² field"


def scenarios(quick: bool) -> list[tuple[str, Cluster, int]]:
    """(label, cluster, images): the lab's 1+3 cluster at 1×/10×/100× data, and scaled out."""
    base = 1_000
    sizes = (base, 10 * base) if quick else (base, 10 * base, 100 * base)
    lab = Cluster(nodes=3, cores_per_node=4)
    rows = [(f"1+3 nodes × 4 cores, {n:,} images", lab, n) for n in sizes]
    rows.append((f"1+30 nodes × 4 cores, {10 * base:,} images", Cluster(30, 4), 10 * base))
    if not quick:
        rows.append((f"1+300 nodes × 4 cores, {100 * base:,} images", Cluster(300, 4), 100 * base))
    return rows


def run(seconds: float, source: str, quick: bool = False) -> dict[str, object]:
    """Simulate every scenario with K = 1 and the best K; return the report."""
    overheads = Overheads()
    rows = []
    for label, cluster, n_images in scenarios(quick):
        times = image_times(n_images, seconds)
        serial = serial_makespan_s(times, overheads)
        max_active = cluster.cores
        scan = scan_k(times, cluster, overheads, max_active)
        one = scan[0]
        best = min(scan, key=lambda r: r.makespan_s)
        rows.append(
            {
                "scenario": label,
                "cluster": asdict(cluster),
                "n_images": n_images,
                "max_active_jobs": max_active,
                "serial_makespan_s": round(serial, 1),
                "k1": asdict(one),
                "k1_speedup": round(serial / one.makespan_s, 2),
                "best_k": asdict(best),
                "best_k_speedup": round(serial / best.makespan_s, 2),
                "ideal_speedup": cluster.cores,
                "k_scan_makespan_s": {r.images_per_pod: r.makespan_s for r in scan},
            }
        )
    return {
        "seconds_per_image_median": seconds,
        "seconds_per_image_source": source,
        "image_time_sigma": 0.25,
        "overheads": asdict(overheads),
        "assumptions": [
            "one image pod = one core; the control-plane node runs no image pods",
            "max active Jobs = worker cores (dispatcher.maxActiveJobs)",
            "serial baseline = one container on one core: one pull, start, model load",
            "storage and Redis are never the bottleneck (not simulated)",
        ],
        "scenarios": rows,
    }


def markdown(report: dict[str, object]) -> str:
    """The report as a markdown table."""
    lines = [
        "# Cluster scale-out (simulated)",
        "",
        f"Per-image time: {report['seconds_per_image_median']} s median "
        f"({report['seconds_per_image_source']}), log-normal sigma {report['image_time_sigma']}.",
        f"Overheads (s): {report['overheads']}.",
        "",
        "| scenario | serial (h) | K=1: makespan (h) | K=1 speed-up | best K | best-K makespan (h) "
        "| best-K speed-up | cores | core busy (best K) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["scenarios"]:  # type: ignore[attr-defined]
        one, best = row["k1"], row["best_k"]
        lines.append(
            f"| {row['scenario']} | {row['serial_makespan_s'] / 3600:.2f} "
            f"| {one['makespan_s'] / 3600:.3f} | {row['k1_speedup']}× | {best['images_per_pod']} "
            f"| {best['makespan_s'] / 3600:.3f} | {row['best_k_speedup']}× "
            f"| {row['ideal_speedup']} | {best['core_busy_fraction']:.0%} |"
        )
    lines += ["", "Makespan (h) by images per pod K:", ""]
    for row in report["scenarios"]:  # type: ignore[attr-defined]
        scan = ", ".join(f"K={k}: {s / 3600:.3f}" for k, s in row["k_scan_makespan_s"].items())
        lines.append(f"- {row['scenario']}: {scan}")
    lines += ["", "Assumptions:", *[f"- {a}" for a in report["assumptions"]], ""]  # type: ignore[misc]
    return "\n".join(lines)


def main() -> None:
    """Command line: simulate, print the table, write JSON and markdown to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-image", type=float, default=None)
    parser.add_argument("--quick", action="store_true", help="skip the 100× data scenarios")
    args = parser.parse_args()
    seconds, source = seconds_per_image()
    if args.seconds_per_image:
        seconds, source = args.seconds_per_image, "--seconds-per-image"
    report = run(seconds, source, args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (RESULTS / "cluster.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
