"""How many cores a process had: the system under test's pinned CPUs (manifest), else
the host's; which sampled sources are the system under test and which the load
generator.
"""

from __future__ import annotations

from analysis.runs import Run
from analysis.steps import StepStats
from runformat.metrics import CPU_PERCENT
from runformat.schemas import is_generator_source


def is_generator(source: str) -> bool:
    """The load generator's own samples (never a constraint of the system under test)."""
    return is_generator_source(source)  # one definition: runformat.schemas


#: ``loadgate run`` itself (samplers, probes, live view): measured, never the system under test.
HARNESS_SOURCE = "process:harness"


def is_system_under_test(source: str) -> bool:
    """A source whose limits are the system's: not the generator, not the harness."""
    return not is_generator(source) and source != HARNESS_SOURCE


def _cpu_sources(steps: list[StepStats]) -> list[str]:
    found = {src for st in steps for src, m in st.resources.items() if CPU_PERCENT in m}
    return sorted(s for s in found if is_system_under_test(s))


def sut_cores(manifest: dict) -> float | None:
    """CPUs the system under test was given, when the run isolated it from the generator.

    The plug-in point for CPU isolation: a manifest ``sut_cpus`` (top level or under
    ``host``; a count, or the list of CPU ids it was pinned to).  None when the run did not
    record one (then the whole host's count is what the service could use).
    """
    iso = manifest.get("isolation") or {}
    if iso.get("mechanism") == "cpuset" and iso.get("stack_cpus"):
        # pinned: the stack had exactly these CPUs (with cgroup weights it may also use
        # what the generator leaves idle, so the host's count stays the ceiling)
        return float(len(iso["stack_cpus"]))
    for where in (manifest, manifest.get("host") or {}):
        value = where.get("sut_cpus") if isinstance(where, dict) else None
        if isinstance(value, list | tuple):
            value = len(value)
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def available_cores(run: Run, steps: list[StepStats], source: str | None) -> tuple[float, str]:
    """Cores a process could use in this run, and where that number comes from.

    The source's ``cpu_limit_cores`` sample (a container quota) if any, else the system
    under test's CPUs (:func:`sut_cores`), else the host's ``cpus`` from the manifest,
    else 1.  One place for every "this run had N cores" (headroom, plan, backtest).
    """
    if source is not None:
        limit = [v for v in resource_series(steps, source, "cpu_limit_cores") if v]
        if limit:
            return float(max(limit)), f"{source} cpu_limit_cores"
    sut = sut_cores(run.manifest)
    if sut is not None:
        return sut, "the system under test's CPUs (manifest sut_cpus)"
    host = (run.manifest.get("host") or {}).get("cpus")
    if host:
        return float(host), "host cores (manifest host.cpus)"
    return 1.0, "not recorded (1 assumed)"


def resource_series(steps: list[StepStats], source: str, metric: str) -> list[float | None]:
    """Each step's mean of one sampled metric of one source (None where not sampled)."""
    return [st.resources.get(source, {}).get(metric) for st in steps]
