"""How many load-generator cores each milestone needs, beside the system's own demands.

The generator is a resource too: one Locust worker is one gevent loop on one core, and
above ~80 % of that core it delays its own requests (``analysis.validity``'s generator
checks). Its demand is measured like a service demand: CPU-seconds per request, from
the workers' own CPU samples (``scenarios.generator_probe``, source ``generator``, 1 Hz,
100 = one core; shipped from remote workers too) over the requests they recorded. A
milestone's throughput (``analysis.plan``) times that demand, at the 80 %
ceiling, is the cores to provision. Without generator samples the README benchmark's
figure stands in (4,800 buyers = 1,971 req/s at 74 % of one core) and the basis says so.

Samples cover each worker's whole life (ramps and idle seconds included), so the
measured demand is, if anything, high: a conservative count of cores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runformat.schemas import GENERATOR_CPU_METRIC, GENERATOR_SOURCE

#: README "Load generator" benchmark: 1,971 req/s at 74 % of one worker core (4,800 buyers).
BENCHMARK_CPU_S_PER_REQUEST = 0.74 / 1971
WORKER_CPU_CEILING = 0.80
HEADER = [
    "milestone",
    "users",
    "throughput (req/s) [95% CI]",
    "generator CPU per request",
    f"worker cores at {WORKER_CPU_CEILING:.0%} [95% CI]",
    "users per core",
    "basis",
]


@dataclass(frozen=True)
class GeneratorDemand:
    cpu_s_per_request: float
    requests: int  # records the measurement is over (0: the benchmark's figure)
    basis: str


@dataclass(frozen=True)
class GeneratorSizing:
    milestone: str
    users: int
    throughput: float
    throughput_ci: tuple[float, float]
    cores: int
    cores_ci: tuple[int, int]
    demand: GeneratorDemand

    @property
    def users_per_core(self) -> float:
        return self.users / max(1, self.cores)


def measure(runs: Sequence[Any]) -> GeneratorDemand:
    """Generator CPU-seconds per request over the runs' workers (benchmark without samples)."""
    cpu_s, requests = 0.0, 0
    for run in runs:
        samples = run.samples
        if samples is None or samples.empty:
            continue
        cpu = samples[
            (samples.source == GENERATOR_SOURCE) & (samples.metric == GENERATOR_CPU_METRIC)
        ]
        if cpu.empty or not len(run.events):
            continue
        cpu_s += float(cpu.value.sum()) / 100.0  # 1 Hz samples: one second each
        requests += len(run.events)
    if requests and cpu_s > 0:
        per = cpu_s / requests
        return GeneratorDemand(per, requests, f"measured over {requests:,} requests")
    return GeneratorDemand(
        BENCHMARK_CPU_S_PER_REQUEST, 0, "benchmark (README: 4,800 buyers per core)"
    )


def cores_for(throughput: float, demand: GeneratorDemand) -> int:
    """Worker cores that carry ``throughput`` req/s under the CPU ceiling (at least one)."""
    return max(1, math.ceil(throughput * demand.cpu_s_per_request / WORKER_CPU_CEILING))


def size_generators(runs: Sequence[Any], milestones: Sequence[Any]) -> list[GeneratorSizing]:
    """One row per milestone (``analysis.plan.types.MilestonePlan``)."""
    demand = measure(runs)
    return [
        GeneratorSizing(
            m.milestone,
            m.users,
            m.throughput,
            m.throughput_ci,
            cores_for(m.throughput, demand),
            (cores_for(m.throughput_ci[0], demand), cores_for(m.throughput_ci[1], demand)),
            demand,
        )
        for m in milestones
    ]


def rows(sizing: Sequence[GeneratorSizing]) -> list[list[str]]:
    """The plan report's table rows (``HEADER``)."""
    return [
        [
            s.milestone,
            f"{s.users:,}",
            f"{s.throughput:,.0f} [{s.throughput_ci[0]:,.0f} – {s.throughput_ci[1]:,.0f}]",
            f"{s.demand.cpu_s_per_request * 1000:.3f} ms",
            f"{s.cores:,} [{s.cores_ci[0]:,} – {s.cores_ci[1]:,}]",
            f"{s.users_per_core:,.0f}",
            s.demand.basis,
        ]
        for s in sizing
    ]


def as_json(sizing: Sequence[GeneratorSizing]) -> list[dict[str, Any]]:
    """plan.json's ``generator`` entries."""
    return [
        {
            "milestone": s.milestone,
            "users": s.users,
            "worker_cores": s.cores,
            "worker_cores_ci": list(s.cores_ci),
            "cpu_s_per_request": s.demand.cpu_s_per_request,
            "requests_measured": s.demand.requests,
            "basis": s.demand.basis,
        }
        for s in sizing
    ]


NOTE = (
    "One Locust worker per core (Kubernetes: one-core pods, deploy/k8s). Cores = "
    f"throughput x generator CPU per request / {WORKER_CPU_CEILING:.0%}: above that a "
    "worker delays its own requests. Heavier personas or the open model change the "
    "per-request CPU: measure with their runs."
)
