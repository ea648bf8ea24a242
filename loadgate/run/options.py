"""What ``loadgate run`` is asked to do, checked before anything starts, and what it did.

Every mistake in the input (a phase, a fixture size, ``--fault`` or ``--isolation`` specs,
an address that is not this host's) is a :class:`ConfigError` here, so a bad run starts
nothing and leaves nothing behind.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadgate.faults import Fault, resolve_faults
from loadgate.locust_cluster import default_worker_count
from runconfig.constants import DEFAULT_SEED
from runconfig.faults import FaultSpecError
from runconfig.phase_config import ConfigError, ResolvedPhase, load_phases, resolve
from runconfig.sizes import get_size
from stack import isolation
from stack.config import StackConfig, StripeRealism
from stack.isolation import IsolationPlan
from stack.stack import resolve_services

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
