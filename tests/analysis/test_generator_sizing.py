"""analysis.generator_sizing: worker cores per milestone from measured generator CPU."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from analysis import generator_sizing as gs


def _run(cpu_values: list[float], requests: int) -> SimpleNamespace:
    samples = pd.DataFrame(
        {
            "source": ["generator"] * len(cpu_values) + ["host"],
            "metric": ["cpu_percent"] * len(cpu_values) + ["cpu_percent"],
            "value": [*cpu_values, 99.0],  # the host's CPU is not the generator's
        }
    )
    return SimpleNamespace(samples=samples, events=range(requests))


def test_measured_cpu_per_request_from_worker_samples():
    # two workers at 50 % for 10 s = 10 CPU-seconds over 20,000 requests = 0.5 ms each
    demand = gs.measure([_run([50.0] * 20, 20_000)])
    assert abs(demand.cpu_s_per_request - 0.0005) < 1e-12
    assert demand.requests == 20_000 and demand.basis.startswith("measured")


def test_benchmark_figure_without_generator_samples():
    demand = gs.measure([SimpleNamespace(samples=pd.DataFrame(), events=range(5))])
    assert demand.requests == 0 and "benchmark" in demand.basis
    # the benchmark's own point: 1,971 req/s fit one core at 74 % (< 80 %)
    assert gs.cores_for(1971, demand) == 1
    assert gs.cores_for(1971 * 30, demand) == 28


def test_cores_per_milestone_follow_throughput():
    milestones = [
        SimpleNamespace(milestone="M2", users=15_000, throughput=6_000.0,
                        throughput_ci=(5_000.0, 7_000.0)),
        SimpleNamespace(milestone="M4", users=150_000, throughput=60_000.0,
                        throughput_ci=(50_000.0, 70_000.0)),
    ]  # fmt: skip
    sized = gs.size_generators([_run([80.0] * 10, 8_000)], milestones)  # 1 ms per request
    assert [s.cores for s in sized] == [8, 75]
    assert sized[1].cores_ci == (63, 88)
    assert gs.rows(sized)[1][4] == "75 [63 – 88]"
    assert gs.as_json(sized)[0]["worker_cores"] == 8
