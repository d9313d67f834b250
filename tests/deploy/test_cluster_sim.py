"""bench/cluster.py: the simulation against cases whose answer is known analytically."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "cluster.py"
_SPEC = importlib.util.spec_from_file_location("bench_cluster", _PATH)
assert _SPEC and _SPEC.loader
sim = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = sim  # dataclasses look their module up there
_SPEC.loader.exec_module(sim)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_one_core_without_overheads_takes_n_times_t(k: int) -> None:
    times = sim.image_times(10, 2.5, sigma=0)
    result = sim.simulate(
        times, sim.Cluster(1, 1), sim.NO_OVERHEADS, max_active=1, images_per_pod=k
    )
    assert result.makespan_s == pytest.approx(10 * 2.5)
    assert result.pods == math.ceil(10 / k)
    assert result.core_busy_fraction == pytest.approx(1.0)


def test_equal_images_spread_perfectly_over_all_cores() -> None:
    times = sim.image_times(24, 1.0, sigma=0)
    result = sim.simulate(times, sim.Cluster(3, 4), sim.NO_OVERHEADS, max_active=12)
    assert result.makespan_s == pytest.approx(2.0)


def test_overheads_add_up_as_expected() -> None:
    overheads = sim.Overheads(
        image_pull_s=30, pod_start_s=3, model_load_s=4, job_create_s=0, schedule_s=0
    )
    times = sim.image_times(3, 2.0, sigma=0)
    one_by_one = sim.simulate(times, sim.Cluster(1, 1), overheads, max_active=1, images_per_pod=1)
    assert one_by_one.makespan_s == pytest.approx(30 + 3 * (3 + 4 + 2))  # pull once per node
    batched = sim.simulate(times, sim.Cluster(1, 1), overheads, max_active=1, images_per_pod=3)
    assert batched.makespan_s == pytest.approx(sim.serial_makespan_s(times, overheads))


def test_max_active_jobs_caps_parallelism() -> None:
    times = sim.image_times(8, 1.0, sigma=0)
    result = sim.simulate(times, sim.Cluster(2, 4), sim.NO_OVERHEADS, max_active=2)
    assert result.makespan_s == pytest.approx(4.0)


def test_dispatcher_creation_rate_bounds_tiny_jobs() -> None:
    overheads = sim.Overheads(0, 0, 0, job_create_s=1.0, schedule_s=0)
    times = sim.image_times(5, 0.1, sigma=0)
    result = sim.simulate(times, sim.Cluster(10, 4), overheads, max_active=40)
    assert result.makespan_s == pytest.approx(5 * 1.0 + 0.1)  # one Job per second


def test_report_runs_quickly_and_k_helps() -> None:
    report = sim.run(6.0, "test", quick=True)
    for row in report["scenarios"]:
        assert row["best_k_speedup"] >= row["k1_speedup"] > 1
        assert row["best_k_speedup"] <= row["ideal_speedup"]
    assert "| scenario |" in sim.markdown(report)
