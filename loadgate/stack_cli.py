"""``loadgate stack ...``: bring the stack up, look at it, take it down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import psutil
import typer
from rich.table import Table

from loadgate.console import console, error, progress
from loadgate.signals import terminate_on_sigterm
from runconfig.constants import PROFILES, PROVIDERS
from stack.config import (
    PG_MAX_CONNECTIONS,
    PGBOUNCER_POOL_SIZE,
    NetworkMode,
    ProviderName,
    StackConfig,
    StripeRealism,
)
from stack.errors import ServiceNotReady, StackError
from stack.providers.choice import reap_leftovers
from stack.services import SERVICES
from stack.stack import ServiceStatus, Stack
from stack.state import clear_state, read_state, state_dir, write_state

app = typer.Typer(help="The Blue Harvests stack: Postgres, PgBouncer, Redis, OSRM, Stripe mock.")

ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider",
        help="auto (containers where a Docker engine answers, else local), local or containers.",
    ),
]
ServiceOpt = Annotated[
    list[str] | None,
    typer.Option("--service", "-s", help="Start only this service (and its dependencies)."),
]
PortOpt = Annotated[
    list[str] | None,
    typer.Option("--port", help="Fixed host port, NAME=PORT (e.g. postgres=5432)."),
]
ReplicaOpt = Annotated[
    bool, typer.Option("--replica", help="Also start a streaming hot-standby replica.")
]
LatencyOpt = Annotated[
    str,
    typer.Option("--stripe-latency", help="Added Stripe latency in ms, MIN-MAX, or 'off'."),
]
RateOpt = Annotated[
    float, typer.Option("--stripe-rate-limit", help="Stripe requests/s before 429; 0 = off.")
]
MaxConnOpt = Annotated[int, typer.Option(help="PostgreSQL max_connections.")]
PoolOpt = Annotated[int, typer.Option(help="PgBouncer default_pool_size.")]
TimeoutOpt = Annotated[float | None, typer.Option(help="Readiness timeout per service, seconds.")]
NetworkOpt = Annotated[str, typer.Option(help="Containers: auto, host or bridge networking.")]
BaseImageOpt = Annotated[str, typer.Option(help="Containers: base image of the service images.")]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", help="Also run the marketplace service with this profile (phase0..phase3)."
    ),
]

NETWORKS = ("auto", "host", "bridge")

# Option defaults are StackConfig's own (stack/config.py), not a second copy here.
DEFAULT_STRIPE = StripeRealism()
DEFAULT_LATENCY = f"{DEFAULT_STRIPE.latency_min_ms:g}-{DEFAULT_STRIPE.latency_max_ms:g}"
DEFAULT_RATE_LIMIT = DEFAULT_STRIPE.rate_limit_per_s
DEFAULT_BASE_IMAGE = StackConfig.base_image
DEFAULT_NETWORK = StackConfig.network
CHECK_PG_MAX_CONNECTIONS = 200
"""``stack check`` only probes every endpoint once, so it runs a small Postgres ..."""
CHECK_PGBOUNCER_POOL_SIZE = 20
"""... and a small PgBouncer pool rather than the seed's §3.1 sizes of ``stack up``."""


def _fail(message: str, details: list[str] | None = None, code: int = 2) -> typer.Exit:
    error(message, details)
    return typer.Exit(code)


def _parse_ports(values: list[str]) -> dict[str, int]:
    ports = {}
    for value in values:
        name, sep, port = value.partition("=")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise _fail(f"--port {value!r} is not NAME=PORT: write e.g. --port postgres=5432")
        ports[name] = int(port)
    return ports


def _parse_latency(value: str) -> tuple[float, float]:
    if value.strip().lower() == "off":
        return 0.0, 0.0
    low, sep, high = value.partition("-")
    try:
        bounds = (float(low), float(high if sep else low))
    except ValueError:
        raise _fail(
            f"--stripe-latency {value!r} is not MIN-MAX in ms: write e.g. 200-500 or off"
        ) from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise _fail(f"--stripe-latency {value!r}: need 0 <= MIN <= MAX, e.g. 200-500")
    return bounds


def build_config(
    provider: str,
    services: list[str] | None,
    ports: list[str] | None,
    replica: bool,
    stripe_latency: str,
    stripe_rate_limit: float,
    pg_max_connections: int,
    pgbouncer_pool_size: int,
    ready_timeout: float | None,
    network: str,
    base_image: str,
    profile: str | None = None,
) -> StackConfig:
    """Options to a :class:`StackConfig`, rejecting bad values before anything starts."""
    if provider not in PROVIDERS:
        raise _fail(f"unknown provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
    if network not in NETWORKS:
        raise _fail(f"unknown network {network!r}: choose one of {', '.join(NETWORKS)}")
    for name in services or []:
        if name not in SERVICES:
            raise _fail(f"unknown service {name!r}: choose from {', '.join(SERVICES)}")
    if profile is not None and profile not in PROFILES:
        raise _fail(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if stripe_rate_limit < 0:
        raise _fail("--stripe-rate-limit must be >= 0 (0 turns the limit off)")
    low, high = _parse_latency(stripe_latency)
    provider_name: ProviderName = provider  # type: ignore[assignment]
    network_mode: NetworkMode = network  # type: ignore[assignment]
    return StackConfig(
        provider=provider_name,
        services=tuple(services) if services else None,
        with_replica=replica,
        pg_max_connections=pg_max_connections,
        pgbouncer_pool_size=pgbouncer_pool_size,
        stripe=StripeRealism(low, high, stripe_rate_limit),
        ports=_parse_ports(ports or []),
        ready_timeout=ready_timeout,
        network=network_mode,
        base_image=base_image,
        profile=profile,
    )


def services_table(statuses: list[ServiceStatus] | list[dict], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("service")
    table.add_column("state")
    table.add_column("URL / DSN", overflow="fold")
    table.add_column("ready in", justify="right")
    for status in statuses:
        row = status if isinstance(status, dict) else status.__dict__
        state = row["state"]
        colour = "green" if state == "ready" else "red"
        ready = row.get("ready_after_s")
        table.add_row(
            row["name"],
            f"[{colour}]{state}[/{colour}]",
            row["url"],
            f"{ready:.2f} s" if ready is not None else "-",
        )
    return table


def _refuse_second_stack() -> None:
    existing = read_state()
    if existing is not None:
        raise _fail(
            f"a stack is already up (supervisor pid {existing['supervisor_pid']}): "
            "run 'loadgate stack down' first"
        )


def _bring_up(config: StackConfig) -> Stack:
    stack = Stack(config, progress=progress)
    try:
        stack.start()
    except ServiceNotReady as exc:
        raise _fail(str(exc), exc.log_tail) from None
    except StackError as exc:
        raise _fail(str(exc)) from None
    return stack


def _watch(stack: Stack) -> int:
    """Stay up until interrupted; a service that dies ends the stack (exit 1)."""
    while True:
        for status in stack.status():
            if status.state != "ready":
                tail = stack.log_tail(status.name)
                error(f"{status.name} stopped unexpectedly; taking the stack down", tail)
                return 1
        time.sleep(1)


@app.command()
def up(
    provider: ProviderOpt = "auto",
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once ready; stop with 'stack down'.")
    ] = False,
    service: ServiceOpt = None,
    port: PortOpt = None,
    replica: ReplicaOpt = False,
    stripe_latency: LatencyOpt = DEFAULT_LATENCY,
    stripe_rate_limit: RateOpt = DEFAULT_RATE_LIMIT,
    pg_max_connections: MaxConnOpt = PG_MAX_CONNECTIONS,
    pgbouncer_pool_size: PoolOpt = PGBOUNCER_POOL_SIZE,
    ready_timeout: TimeoutOpt = None,
    network: NetworkOpt = DEFAULT_NETWORK,
    base_image: BaseImageOpt = DEFAULT_BASE_IMAGE,
    profile: ProfileOpt = None,
    supervise: Annotated[bool, typer.Option("--supervise", hidden=True)] = False,
) -> None:
    """Bring the stack up and show its services; stays up until Ctrl-C (or --detach)."""
    config = build_config(
        provider,
        service,
        port,
        replica,
        stripe_latency,
        stripe_rate_limit,
        pg_max_connections,
        pgbouncer_pool_size,
        ready_timeout,
        network,
        base_image,
        profile,
    )
    _refuse_second_stack()
    if detach:
        raise typer.Exit(_detach(sys.argv[1:]))
    with terminate_on_sigterm():
        stack = _bring_up(config)
        code = 0
        try:
            write_state(stack, detached=supervise)
            console.print(services_table(stack.status(), _title(stack)))
            if not supervise:
                console.print("Stack is up. Press Ctrl-C to stop it.")
            code = _watch(stack)
        except KeyboardInterrupt:
            console.print("stopping the stack…")
        finally:
            clear_state(stack.stack_id)
            stack.stop()
    raise typer.Exit(code)


def _title(stack: Stack) -> str:
    provider = stack.provider.name if stack.provider else "?"
    return f"stack {stack.stack_id} ({provider} provider) ready in {stack.ready_after_s:.2f} s"


def _detach(argv: list[str]) -> int:
    """Run ``stack up`` as a supervisor in its own session; return once it is ready."""
    args = [a for a in argv if a not in ("--detach", "-d")]
    log_path = state_dir() / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "loadgate", *args, "--supervise"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        state = read_state()
        if state and state.get("supervisor_pid") == child.pid:
            console.print(
                services_table(
                    state["services"],
                    f"stack {state['stack_id']} "
                    f"({state['provider']} provider) ready in "
                    f"{state['ready_after_s']:.2f} s, detached",
                )
            )
            console.print(f"Supervisor pid {child.pid}; stop it with 'loadgate stack down'.")
            return 0
        code = child.poll()
        if code is not None:
            lines = log_path.read_text(errors="replace").splitlines()
            sys.stderr.write("\n".join(line for line in lines if not line.startswith("›")))
            sys.stderr.write("\n")
            return code or 2
        time.sleep(0.1)
    child.terminate()
    error("the detached stack did not become ready in 15 minutes: see " + str(log_path))
    return 2


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the stack that is up: each service's state and URL/DSN (exit 1 if none)."""
    state = read_state()
    if state is None:
        if as_json:
            console.print_json(json.dumps({"up": False, "services": []}))
        else:
            console.print("no stack is up")
        raise typer.Exit(1)
    for service in state["services"]:
        service["state"] = _probe_state(service["name"], service["url"])
    healthy = all(s["state"] == "ready" for s in state["services"])
    if as_json:
        print(json.dumps({"up": True, "healthy": healthy, **state}, indent=2))
    else:
        console.print(
            services_table(
                state["services"],
                f"stack {state['stack_id']} "
                f"({state['provider']} provider, supervisor pid {state['supervisor_pid']})",
            )
        )
    raise typer.Exit(0 if healthy else 1)


def _probe_state(name: str, url: str) -> str:
    try:
        SERVICES[name].probe(url)
    except Exception:
        return "unhealthy"
    return "ready"


@app.command()
def down(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop.")] = 60.0,
) -> None:
    """Stop the stack that is up (and reap leftovers of killed earlier runs)."""
    state = read_state()
    if state is None:
        reaped = reap_leftovers(progress)
        console.print("no stack is up" + (f"; reaped {len(reaped)} leftovers" if reaped else ""))
        return
    pid = int(state["supervisor_pid"])
    console.print(f"stopping stack {state['stack_id']} (supervisor pid {pid})…")
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        error(f"the supervisor did not stop in {timeout:g} s; killing it and reaping")
        proc.kill()
        time.sleep(0.5)
        reap_leftovers(progress)
    console.print("stack stopped")


@app.command()
def check(
    provider: ProviderOpt = "auto",
    service: ServiceOpt = None,
    replica: ReplicaOpt = False,
    stripe_latency: LatencyOpt = DEFAULT_LATENCY,
    stripe_rate_limit: RateOpt = DEFAULT_RATE_LIMIT,
    ready_timeout: TimeoutOpt = None,
    network: NetworkOpt = DEFAULT_NETWORK,
    base_image: BaseImageOpt = DEFAULT_BASE_IMAGE,
    profile: ProfileOpt = None,
) -> None:
    """Bring the stack up, check every endpoint answers, take it down."""
    config = build_config(
        provider,
        service,
        None,
        replica,
        stripe_latency,
        stripe_rate_limit,
        pg_max_connections=CHECK_PG_MAX_CONNECTIONS,
        pgbouncer_pool_size=CHECK_PGBOUNCER_POOL_SIZE,
        ready_timeout=ready_timeout,
        network=network,
        base_image=base_image,
        profile=profile,
    )
    _refuse_second_stack()
    with terminate_on_sigterm():
        stack = _bring_up(config)
        try:
            statuses = [
                ServiceStatus(s.name, _probe_state(s.name, s.url), s.url, s.ready_after_s)
                for s in stack.status()
            ]
            console.print(services_table(statuses, _title(stack)))
        finally:
            stack.stop()
    if any(s.state != "ready" for s in statuses):
        raise _fail("some services are not healthy: see the table above", code=1)
    console.print("[green]every service answered; stack taken down[/green]")
