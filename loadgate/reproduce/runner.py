"""Running a reproduction: two ordinary ``loadgate run`` executions, then the comparison.

Each side is :func:`loadgate.run.execute` with the same phase, derived config, users,
fixture size and seed, into ``DIR/before`` and ``DIR/after``; only the architecture
differs (a profile, or one profile flag through ``LOADGATE_PROFILE_OVERRIDES``, which
the run's manifest records as ``profile_overrides``). Each run directory gets its own
run report (``RUN/report``, as ``loadgate run`` writes it), so either side can be read
on its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from analysis.analyze import AnalysisResult
from analysis.reproduce.breaking import breaking_point, judge_steps
from analysis.reproduce.outcome import Outcome, SideResult
from analysis.reproduce.registry import Reproduction, Side
from analysis.reproduce.verdict import decide
from marketplace.profiles import OVERRIDES_ENV, ProfileOverrideError, apply_overrides, get_profile
from runconfig.constants import DEFAULT_SEED
from runconfig.phase_config import DEFAULT_CONFIG, ConfigError, load_phases
from runconfig.reproduce import ReproducePlan, ReproduceSpec, derived_config
from runformat import rundir

Progress = Callable[[str], None]


@dataclass
class ReproduceOptions:
    name: str
    out: Path
    quick: bool = False
    config_path: Path | None = None
    provider: str = "auto"
    seed: int = DEFAULT_SEED
    workers: int | None = None
    isolation: str | None = None
    generator_cpus: str | None = None


@dataclass
class Prepared:
    repro: Reproduction
    spec: ReproduceSpec
    plan: ReproducePlan
    config_path: Path


def prepare(options: ReproduceOptions, repro: Reproduction) -> Prepared:
    """Everything that can be wrong with the input, checked before any stack starts."""
    base = options.config_path or DEFAULT_CONFIG
    config = load_phases(base)
    spec = config.reproduce.get(repro.name)
    if spec is None:
        raise ConfigError(
            f"{base}: no [reproduce.{repro.name}] table: add its steps, holds and users "
            "(see config/phases.toml)"
        )
    if spec.phase not in config.phases:
        raise ConfigError(f"{base}: reproduce.{repro.name}.phase: no phase {spec.phase}")
    for side in (repro.before, repro.after):
        try:
            apply_overrides(get_profile(side.profile), side.overrides)
        except ProfileOverrideError as exc:
            raise ConfigError(f"reproduction {repro.name}: {exc}") from None
    if options.out.exists() and any(options.out.iterdir()):
        raise FileExistsError(
            f"output directory {options.out} already has files: choose another with --out DIR"
        )
    plan = spec.plan(options.quick)
    try:
        path = derived_config(base, spec.phase, plan, options.out / "phases.toml")
        load_phases(path)  # the derived file must load like any config
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Prepared(repro, spec, plan, path)


@contextmanager
def profile_overrides(side: Side) -> Iterator[None]:
    """``LOADGATE_PROFILE_OVERRIDES`` set for this side only (restored afterwards)."""
    previous = os.environ.pop(OVERRIDES_ENV, None)
    value = side.env_value()
    if value is not None:
        os.environ[OVERRIDES_ENV] = value
    try:
        yield
    finally:
        os.environ.pop(OVERRIDES_ENV, None)
        if previous is not None:
            os.environ[OVERRIDES_ENV] = previous


def run_side(
    prepared: Prepared,
    options: ReproduceOptions,
    label: str,
    console: Console,
    progress: Progress,
) -> Path:
    """One side as a normal run; returns its run directory (kept whatever happened)."""
    from loadgate.run import execute
    from loadgate.run.options import RunOptions

    side = prepared.repro.before if label == "before" else prepared.repro.after
    run_options = RunOptions(
        phase=prepared.spec.phase,
        config_path=prepared.config_path,
        users=prepared.plan.users,
        profile=side.profile,
        provider=options.provider,
        out=options.out / label,
        seed=options.seed,
        fixture_size=prepared.plan.fixture_size,
        isolation=options.isolation,
        generator_cpus=options.generator_cpus,
        gate_hold_max_s=0,  # a reproduction compares breaking points, not a gate verdict
    )
    if options.workers is not None:
        run_options.workers = options.workers
    progress(f"{label}: {side.describe()}")
    with profile_overrides(side):
        result = execute(run_options, console, progress)
    rundir.write_manifest(
        result.run_dir,
        profile_overrides=side.overrides,
        reproduction={"name": prepared.repro.name, "side": label, "quick": options.quick},
    )
    return result.run_dir


def side_result(repro: Reproduction, label: str, run_dir: Path) -> SideResult:
    """Analyse one side's run into a :class:`SideResult`."""
    import analysis
    from reports import load_checked

    side = repro.before if label == "before" else repro.after
    run = load_checked(run_dir)
    result: AnalysisResult = analysis.analyze(run)
    steps = judge_steps(run, result, repro.metrics)
    return SideResult(
        label=label,
        configuration=side.describe(),
        run_dir=run_dir,
        status=str(run.meta.status),
        analysis=result,
        steps=steps,
        breaking=breaking_point(steps),
    )


def compare_sides(
    repro: Reproduction, before: Path, after: Path
) -> tuple[SideResult, SideResult, Outcome]:
    b, a = side_result(repro, "before", before), side_result(repro, "after", after)
    return b, a, decide(repro, b, a)
