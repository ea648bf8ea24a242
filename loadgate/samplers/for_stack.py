"""The samplers a stack gets: one per service it has, plus its processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from loadgate.samplers.loop import Sampler
from loadgate.samplers.processes import ContainerSampler, ProcessSampler
from loadgate.samplers.service_metrics import PrometheusSampler
from loadgate.samplers.stores import PgBouncerSampler, PostgresSampler, RedisSampler


def stack_samplers(
    urls: Mapping[str, str],
    pids: Mapping[str, int] | None = None,
    containers: Mapping[str, str] | None = None,
    locate: Callable[[str], int] | None = None,
) -> list[Sampler]:
    """The samplers for a stack: one per service it has, plus its processes.

    ``pids`` are local service processes, ``containers`` container ids (the
    containers provider); each service is sampled by whichever it has.
    ``locate(name)`` gives a local service's current pid after a restart.
    """
    samplers: list[Sampler] = [
        ProcessSampler(n, pid, locate=(lambda n=n: locate(n)) if locate else None)
        for n, pid in (pids or {}).items()
    ]
    samplers += [ContainerSampler(n, cid) for n, cid in (containers or {}).items()]
    if "postgres" in urls:
        samplers.append(PostgresSampler(urls["postgres"]))
    if "replica" in urls:
        samplers.append(PostgresSampler(urls["replica"], name="replica"))
    if "pgbouncer" in urls:
        samplers.append(PgBouncerSampler(urls["pgbouncer"]))
    if "redis" in urls:
        samplers.append(RedisSampler(urls["redis"]))
    if "marketplace" in urls:
        samplers.append(PrometheusSampler(urls["marketplace"].rstrip("/") + "/metrics"))
    return samplers
