"""Bringing a run's world up before the load: isolation, the stack, its logs, the
fixtures, the stock baseline and the samplers, each recorded in the manifest as it
happens (a run that fails half-way still says how far it got)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from loadgate.run.options import Progress, RunOptions
from loadgate.samplers.for_stack import stack_samplers
from loadgate.samplers.loop import Sampler
from loadgate.samplers.processes import HostSampler
from runconfig.phase_config import ConfigError, ResolvedPhase
from runconfig.sizes import get_size
from runformat import rundir
from stack import isolation
from stack.config import StackConfig
from stack.isolation import IsolationPlan
from stack.logs import LogStreamer
from stack.stack import Stack


def isolate(plan: IsolationPlan, run_dir: Path, progress: Progress) -> isolation.Isolation:
    """Create the run's isolation and put the harness itself on the generator's side."""
    try:
        isolated = isolation.Isolation(plan, run_dir.name[-24:].replace("/", "_"))
    except isolation.IsolationError as exc:
        raise ConfigError(str(exc)) from None
    isolated.place_self()
    from reports.fmt import placement_lines  # the words the report's first line uses

    progress(placement_lines({"isolation": plan.record()})[0])
    return isolated


def stream_logs(stack: Stack, run_dir: Path) -> LogStreamer:
    """Follow every service's log into ``logs/`` from now on (the incident watcher tails it)."""
    streamer = LogStreamer(stack, run_dir / "logs")
    streamer.start()
    return streamer


def bring_up(
    options: RunOptions,
    phase: ResolvedPhase,
    run_dir: Path,
    progress: Progress,
    isolated: isolation.Isolation | None = None,
) -> Stack:
    """The stack with the phase's profile, on the stack's side of the isolation; where it
    runs and when it was ready go into the manifest."""
    config = StackConfig(
        provider=options.provider,
        profile=phase.profile,  # type: ignore[arg-type]
        stripe=options.stripe,
        placement=isolated.stack if isolated else None,
        service_host=options.service_host,
    )
    stack = Stack(config, progress=progress)
    stack.start()
    rundir.write_manifest(
        run_dir,
        provider=stack.provider.name if stack.provider else None,
        stack={s.name: s.url for s in stack.services.values()},
        stack_id=stack.stack_id,
        stack_ready_after_s=stack.ready_after_s,
        stripe=dataclasses.asdict(options.stripe),  # the Stripe limit headroom is measured against
    )
    return stack


def load_fixtures(
    options: RunOptions, phase: ResolvedPhase, stack: Stack, run_dir: Path, progress: Progress
) -> Path:
    """Fixtures sized for the phase into the stack's database; the credentials file the
    Locust users log in with."""
    from fixtures.load import load

    size = get_size(options.fixture_size or phase.fixture_size)
    credentials = run_dir / "credentials.csv"
    progress(f"loading fixtures (size {size.name}, seed {options.seed})")
    started = time.monotonic()
    report = load(
        stack.url("postgres"),
        size,
        options.seed,
        stack.url("osrm"),
        credentials,
        progress=lambda event: _fixture_progress(event, progress),
        migrate_profile=None,  # the service applied its profile's migrations at start
        secret=stack.config.auth_secret,
    )
    rundir.write_manifest(
        run_dir,
        fixtures={
            "size": size.name,
            "seed": options.seed,
            "seconds": round(time.monotonic() - started, 2),
            "rows": getattr(report, "rows", None),
        },
    )
    return credentials


def record_stock_baseline(stack: Stack, run_dir: Path) -> None:
    """Every product's stock before the load: ``verify --run``'s stock baseline."""
    import psycopg
    from psycopg.rows import dict_row

    from loadgate.reconcile import snapshot_stock

    with psycopg.connect(stack.url("postgres"), row_factory=dict_row, connect_timeout=10) as c:
        snapshot_stock(c, run_dir)


def _fixture_progress(event: object, progress: Progress) -> None:
    """Report each finished fixture step (the loader also reports step starts)."""
    seconds = getattr(event, "seconds", None)
    if seconds is None:
        return
    rows = getattr(event, "rows", None)
    count = f"{rows:,} rows, " if rows is not None else ""
    progress(f"fixtures: {getattr(event, 'step', event)} ({count}{seconds:.2f} s)")


def run_samplers(stack: Stack | None) -> list[Sampler]:
    """The host's sampler, plus the stack's when the run has one (not with ``--target``);
    a restarted local service is found again by name."""
    samplers: list[Sampler] = [HostSampler()]
    if stack is not None:
        services = stack.services.values()
        samplers += stack_samplers(
            {s.name: s.url for s in services},
            {s.name: s.pid for s in services if s.pid},
            {s.name: s.container_id for s in services if s.container_id},
            locate=lambda name: stack.services[name].pid,
        )
    return samplers
