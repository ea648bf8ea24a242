"""``loadgate run``: one phase, from an empty machine to a complete run directory.

The pipeline: resolve the phase config (rejecting bad input before anything
starts) → create the run directory and its manifest → bring the stack up with
the phase's profile → load fixtures sized for the phase → start the samplers
→ run Locust (master + local workers) along the phase's stages, with a live
view → stop everything → finish the manifest → analyse and report.

Whatever happens (a failure, Ctrl-C, SIGTERM), the ``finally`` path stops
Locust, flushes the samplers, copies the service logs and takes the stack
down; raw data already flushed stays, and the manifest says how the run
ended, so an interrupted run can still be analysed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from loadgate.faults import Fault, FaultLog, FaultScheduler, resolve_faults
from loadgate.hold import GateHold, subprocess_evaluator
from loadgate.incidents import IncidentWatcher
from loadgate.live import LiveStats, live_view
from loadgate.locust_cluster import DRAIN_TIMEOUT_S, LocustCluster, default_worker_count
from loadgate.queue_drain import wait_for_queue
from loadgate.samplers import HostSampler, ProcessSampler, Sampler, SamplerLoop, stack_samplers
from marketplace.profiles import ProfileOverrideError, overrides_from_env
from runconfig.constants import DEFAULT_SEED
from runconfig.faults import FaultSpecError
from runconfig.phase_config import ConfigError, ResolvedPhase, load_phases, resolve
from runconfig.sizes import get_size
from runformat import rundir
from scenarios.plan import LoadPlan
from stack import isolation
from stack.config import StackConfig, StripeRealism
from stack.control import ServiceControl
from stack.isolation import IsolationPlan
from stack.logs import LogStreamer
from stack.stack import Stack, resolve_services

Progress = Callable[[str], None]


@dataclass
class RunOptions:
    phase: int
    config_path: Path | None = None
    users: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    profile: str | None = None
    model: str | None = None
    provider: str = "auto"
    out: Path | None = None
    target: str | None = None
    credentials: Path | None = None
    workers: int = field(default_factory=default_worker_count)
    web: bool = False
    seed: int = DEFAULT_SEED
    fixture_size: str | None = None
    stripe: StripeRealism = field(default_factory=StripeRealism)
    master_bind: str = "127.0.0.1"
    service_host: str = "127.0.0.1"
    """``--service-host``: the address the local stack's service listens on (remote workers)."""
    master_port: int | None = None
    remote_workers: int = 0
    faults: list[str] | None = None
    """``--fault`` specs (``loadgate.faults``); None = the phase config's, [] = none."""
    isolation: str | None = None
    """``--isolation`` auto/cpuset/weights/none; None = the config's ``isolation``."""
    generator_cpus: str | None = None
    """``--generator-cpus``: "auto", a count or a CPU list; None = the config's."""
    gate_hold_max_s: float | None = None
    """``--gate-hold-max``: longest extension of an undecided gate step; None = config's."""


@dataclass
class RunResult:
    run_dir: Path
    status: str  # a runformat.manifest.RunStatus
    requests: int = 0
    detail: str | None = None
    ready_after_s: float | None = None


def prepare(options: RunOptions) -> ResolvedPhase:
    """Everything that can be wrong with the input, checked before anything starts."""
    phase = resolve(
        load_phases(options.config_path),
        options.phase,
        users=options.users,
        duration_s=options.duration_s,
        rate=options.rate,
        profile=options.profile,
        model=options.model,
        gate_hold_max_s=options.gate_hold_max_s,
    )
    size = options.fixture_size or phase.fixture_size
    try:
        get_size(size)
    except ValueError as exc:
        raise ConfigError(f"fixture size: {exc}") from None
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers}: need at least one Locust worker")
    if options.remote_workers < 0:
        raise ConfigError(f"--remote-workers {options.remote_workers}: must be >= 0")
    if options.remote_workers and options.master_port is None:
        raise ConfigError("--remote-workers needs --master-port PORT (the workers must know it)")
    if options.target and options.credentials is None:
        raise ConfigError("--target needs --credentials PATH (identities on that deployment)")
    if options.credentials is not None and not options.credentials.exists():
        raise ConfigError(f"--credentials {options.credentials}: no such file")
    if options.target and not options.target.startswith(("http://", "https://")):
        raise ConfigError(f"--target {options.target!r}: give a URL such as http://127.0.0.1:8000")
    _check_service_host(options)
    return phase


def _check_service_host(options: RunOptions) -> None:
    """The address must be this host's own: binding it later would only time out."""
    if options.service_host == "127.0.0.1":
        return
    if options.target:
        raise ConfigError("--service-host is for the local stack: drop it with --target")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((options.service_host, 0))
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"--service-host {options.service_host}: not an address of this host ({exc}); "
            "give one of this host's IPv4 addresses (ip -4 addr)"
        ) from None


def plan_isolation(options: RunOptions) -> IsolationPlan | None:
    """How the generator is isolated from a stack on this host (None with ``--target``:
    the stack is elsewhere); bad ``--isolation`` / ``--generator-cpus`` is a ConfigError."""
    if options.target:
        return None
    defaults = load_phases(options.config_path).defaults
    try:
        return isolation.plan_isolation(
            options.isolation or defaults.isolation,
            options.generator_cpus or defaults.generator_cpus,
        )
    except isolation.IsolationError as exc:
        raise ConfigError(str(exc)) from None


def plan_faults(options: RunOptions, phase: ResolvedPhase) -> list[Fault]:
    """The run's faults in seconds (``--fault`` replaces the phase config's), checked
    against the load's length and the stack's services before anything starts."""
    from runconfig.faults import parse_fault

    try:
        if options.faults is None:
            specs = list(load_phases(options.config_path).phases[options.phase].faults)
        else:
            specs = [parse_fault(text) for text in options.faults if text != "none"]
        if specs and options.target:
            raise FaultSpecError(
                "faults are injected into the local stack: drop --fault (or --fault none) "
                "with --target"
            )
        config = StackConfig(provider=options.provider, profile=phase.profile)  # type: ignore[arg-type]
        names = {spec.name for spec in resolve_services(config)}
        return resolve_faults(specs, phase.duration_s, names) if specs else []
    except FaultSpecError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class Guards:
    """What watches and breaks the stack during a fault run, stopped in order."""

    streamer: LogStreamer | None = None
    watcher: IncidentWatcher | None = None
    scheduler: FaultScheduler | None = None
    control: ServiceControl | None = None


def execute(options: RunOptions, console: Console, progress: Progress) -> RunResult:
    phase = prepare(options)
    faults = plan_faults(options, phase)
    try:
        overrides = overrides_from_env()
    except ProfileOverrideError as exc:
        raise ConfigError(str(exc)) from None
    placement = plan_isolation(options)
    run_dir = rundir.create(options.out or rundir.default_run_dir(options.phase))
    plan_path = run_dir / "plan.json"
    plan_path.write_text(json.dumps(phase.model_dump(), indent=2))
    rundir.write_manifest(
        run_dir,
        run_id=run_dir.name,
        phase=phase.phase,
        profile=phase.profile,
        model=phase.model,
        config=_manifest_config(phase),
        seed=options.seed,
        started_at=rundir.now_iso(),
        status="running",
        target=options.target,
        workers=options.workers,
        faults_planned=[dataclasses.asdict(f) for f in faults],
        isolation=placement.record() if placement else None,
    )
    if overrides:  # e.g. the test-only racy_cart_delete: a run says it was not the profile
        rundir.write_manifest(run_dir, profile_overrides=overrides)
    progress(f"run directory {run_dir}")
    result = RunResult(run_dir=run_dir, status="failed")
    stack: Stack | None = None
    samplers: SamplerLoop | None = None
    cluster: LocustCluster | None = None
    guards = Guards()
    isolated: isolation.Isolation | None = None
    try:
        if placement is not None:
            isolated = _isolate(placement, run_dir, progress)
        if options.target:
            host, credentials = options.target, options.credentials
        else:
            stack = _bring_up(options, phase, run_dir, progress, isolated)
            result.ready_after_s = stack.ready_after_s
            guards.streamer = _stream_logs(stack, run_dir)
            credentials = _load_fixtures(options, phase, stack, run_dir, progress)
            _snapshot_stock(stack, run_dir)
            host = stack.url("marketplace")
        assert credentials is not None
        cluster = LocustCluster(
            run_dir,
            host,
            plan_path,
            credentials,
            options.workers,
            options.web,
            options.seed,
            master_bind=options.master_bind,
            master_port=options.master_port,
            remote_workers=options.remote_workers,
            place=isolated.generator.enter if isolated else None,
        )
        # Samplers first: counters need a sample from before the load starts.
        samplers = SamplerLoop(run_dir, _samplers(stack))
        samplers.start()
        cluster.start()
        if stack is not None:
            _watch(guards, stack, run_dir, faults)
        samplers.samplers.extend(ProcessSampler(n, pid) for n, pid in cluster.pids.items())
        # The harness's own share of the box (samplers, capture, live view): on a machine
        # it shares with the stack, its CPU is CPU the service did not get.
        samplers.samplers.append(ProcessSampler("harness", os.getpid(), children=False))
        if options.remote_workers:
            console.print(
                f"waiting for {options.remote_workers} remote worker(s): on each machine run "
                f"'loadgate worker --master {options.master_bind} --master-port {cluster.port}'"
            )
        if cluster.web_port:
            console.print(f"Locust web UI: http://127.0.0.1:{cluster.web_port}")
        result.status, result.detail = _drive(cluster, run_dir, phase, console)
        if result.status == "completed" and "job_completion_rate" in phase.gate.get("criteria", {}):
            wait_for_queue(host, progress)  # samplers keep recording the queue meanwhile
    except KeyboardInterrupt:
        result.status = "interrupted"
        raise
    finally:
        _finish(result, cluster, samplers, stack, run_dir, progress, guards, True)
        if isolated is not None:
            isolated.close()  # after the stack and Locust stopped: the cgroups are empty
    return result


def _isolate(plan: IsolationPlan, run_dir: Path, progress: Progress) -> isolation.Isolation:
    """Create the run's isolation and put the harness itself on the generator's side."""
    try:
        isolated = isolation.Isolation(plan, run_dir.name[-24:].replace("/", "_"))
    except isolation.IsolationError as exc:
        raise ConfigError(str(exc)) from None
    isolated.place_self()
    from reports.fmt import placement_lines  # the words the report's first line uses

    progress(placement_lines({"isolation": plan.record()})[0])
    return isolated


def _stream_logs(stack: Stack, run_dir: Path) -> LogStreamer:
    streamer = LogStreamer(stack, run_dir / "logs")
    streamer.start()
    return streamer


def _watch(guards: Guards, stack: Stack, run_dir: Path, faults: list[Fault]) -> None:
    """Start the incident watcher and the fault scheduler with the load."""
    if faults:
        guards.control = ServiceControl(stack)
        guards.scheduler = FaultScheduler(
            faults, guards.control, FaultLog(run_dir), lambda: _load_start_s(run_dir)
        )
    streamer = guards.streamer
    guards.watcher = IncidentWatcher(
        run_dir,
        {name: _probe(stack, name) for name in stack.services},
        tail=streamer.tail if streamer is not None else stack.log_tail,
        expected=guards.scheduler.expected if guards.scheduler else (lambda name: None),
    )
    guards.watcher.start()
    if guards.scheduler is not None:
        guards.scheduler.start()


def _probe(stack: Stack, name: str) -> Callable[[], object]:
    """The service's readiness probe against its current URL (it may be restarted)."""

    def probe() -> object:
        service = stack.services[name]
        return service.spec.probe(service.url)

    return probe


def _load_start_s(run_dir: Path) -> float | None:
    """Epoch seconds of the load's t = 0, once the Locust master has written it."""
    from runformat.manifest import iso_to_us

    try:
        started = json.loads((run_dir / rundir.TEST_START_FILE).read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return iso_to_us(started) / 1e6


def _manifest_config(phase: ResolvedPhase) -> dict:
    config = phase.model_dump()
    config["stages"] = [s.model_dump() for s in phase.stages]
    return config


def _bring_up(
    options: RunOptions,
    phase: ResolvedPhase,
    run_dir: Path,
    progress: Progress,
    isolated: isolation.Isolation | None = None,
) -> Stack:
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


def _load_fixtures(
    options: RunOptions, phase: ResolvedPhase, stack: Stack, run_dir: Path, progress: Progress
) -> Path:
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


def _snapshot_stock(stack: Stack, run_dir: Path) -> None:
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


def _samplers(stack: Stack | None) -> list[Sampler]:
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


def _drive(
    cluster: LocustCluster, run_dir: Path, phase: ResolvedPhase, console: Console
) -> tuple[str, str | None]:
    """Show the live view until Locust finishes the plan (bounded by the plan's length and
    the gate hold's cap), holding the gate step while a criterion is undecided."""
    plan = LoadPlan.from_dict(phase.model_dump())
    live = LiveStats(run_dir, plan, cluster.pids)
    hold = GateHold(run_dir, plan.duration_s, plan.gate_hold_max_s, subprocess_evaluator(run_dir))
    deadline = time.monotonic() + plan.duration_s + plan.gate_hold_max_s + DRAIN_TIMEOUT_S + 60
    load_started = False
    try:
        with live_view(live, console) as view:
            while not cluster.finished():
                load_started = load_started or _record_load_start(run_dir)
                if time.monotonic() > deadline:
                    console.print(
                        "[red]Locust did not finish within the plan + gate hold cap + drain "
                        "+ 60 s; stopping it[/red]"
                    )
                    return "timed_out", "Locust did not finish within the plan's length"
                time.sleep(1)
                t = _plan_time(run_dir) if load_started else None
                hold.poll(t)
                live.hold_status = hold.status(t)
                live.refresh()
                view.update(live.render())
        live.refresh()
        _record_load_start(run_dir)
    finally:
        record = hold.finish(_plan_time(run_dir))
        if record and record["extended_s"] > 0:
            console.print(
                f"gate step held {record['extended_s']:.0f} s past its plan "
                f"(cap {record['cap_s']:.0f} s, {record['outcome']}): {record['reason']}",
                markup=False,
            )
    code = cluster.master.returncode if cluster.master else None
    if code not in (0, 1):  # 1: Locust saw failed requests, which analysis judges itself
        return "failed", f"the Locust master exited with code {code}"
    short = stopped_early(run_dir, plan.duration_s)
    return ("failed", short) if short else ("completed", None)


#: A plan that ends this many seconds early has not been run (Locust's own stop takes ~1 s).
EARLY_STOP_TOLERANCE_S = 10.0


def stopped_early(run_dir: Path, plan_s: float, now: datetime | None = None) -> str | None:
    """Why the load ended before the plan did, or None.

    Locust's master stops the whole test, with exit code 0, when its last worker misses
    heartbeats for 3 s: on an overloaded box a run could otherwise end after half a
    minute and still be recorded as "completed".
    """
    try:
        started = json.loads((run_dir / rundir.TEST_START_FILE).read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None  # the load never started: Locust's own exit code and logs say why
    elapsed = ((now or datetime.now(UTC)) - datetime.fromisoformat(started)).total_seconds()
    if elapsed >= plan_s - EARLY_STOP_TOLERANCE_S:
        return None
    return (
        f"Locust stopped after {elapsed:.0f} s of the plan's {plan_s:.0f} s (a worker that "
        "misses heartbeats for 3 s stops the test: an overloaded box or a crashed worker; "
        "see locust/*.log)"
    )


def _plan_time(run_dir: Path) -> float | None:
    """Seconds since the load shape's t = 0 (the master's test start), if known."""
    started = _load_start_s(run_dir)
    return None if started is None else time.time() - started


def _record_load_start(run_dir: Path) -> bool:
    """Copy the master's test-start time into the manifest (stage offsets' t = 0)."""
    path = run_dir / rundir.TEST_START_FILE
    try:
        started = json.loads(path.read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return False
    rundir.write_manifest(run_dir, load_started_at=started)
    return True


def _finish(
    result: RunResult,
    cluster: LocustCluster | None,
    samplers: SamplerLoop | None,
    stack: Stack | None,
    run_dir: Path,
    progress: Progress,
    guards: Guards | None = None,
    verify_after: bool = False,
) -> None:
    """Stop in reverse order and record how the run ended; never raises.

    Faults still active are undone first; the run then waits for deferred payments
    and verifies the data and every acknowledged write (``verify.json``, issue 21)
    while the stack is still up.
    """
    guards = guards or Guards()
    if cluster is not None:
        progress("stopping Locust")
        cluster.stop()
    if guards.scheduler is not None:
        guards.scheduler.stop()
    if verify_after and result.status == "completed" and stack is not None and stack.provider:
        from loadgate.aftercheck import settle_and_verify

        stripe = stack.services.get("stripe")
        try:
            settle_and_verify(
                stack.url("postgres"), stripe.url if stripe else None, run_dir, progress
            )
        except KeyboardInterrupt:  # a second Ctrl-C: skip the check, still tear down
            progress("verify after the load skipped: interrupted")
    if guards.watcher is not None:
        guards.watcher.stop()
    if samplers is not None:
        samplers.stop()
    if stack is not None:
        if guards.streamer is not None:
            guards.streamer.stop()
        else:
            _copy_logs(stack, run_dir)
        progress("taking the stack down")
        stack.stop()
    if guards.control is not None:
        guards.control.close()
    result.requests = _count_events(run_dir)
    rundir.write_manifest(
        run_dir,
        ended_at=rundir.now_iso(),
        status=result.status,
        status_detail=result.detail,
        requests=result.requests,
        **rundir.record_channel_accounting(run_dir),
    )


def _copy_logs(stack: Stack, run_dir: Path) -> None:
    for service in stack.services.values():
        if service.log_path and service.log_path.exists():
            shutil.copy(service.log_path, run_dir / "logs" / f"{service.name}.log")
        elif stack.provider is not None:
            lines = stack.provider.log_tail(service, lines=100_000)
            (run_dir / "logs" / f"{service.name}.log").write_text("\n".join(lines))


def _count_events(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in (run_dir / "events").glob("*.parquet"):
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            continue
    return total
