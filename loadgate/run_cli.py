"""``loadgate run`` and ``loadgate worker``: the main job and remote workers."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from loadgate.console import console, error, progress
from loadgate.locust_cluster import LOCUSTFILES, default_worker_count, locust_command
from loadgate.report_cli import report_and_print
from loadgate.signals import terminate_on_sigterm
from runconfig.constants import DEFAULT_SEED, PROVIDERS
from runconfig.phase_config import ConfigError
from stack.errors import ServiceNotReady, StackError


def parse_duration(text: str, option: str = "--duration") -> float:
    """``90``, ``90s``, ``5m``, ``1h`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise ConfigError(f"{option} {text!r}: write seconds or a unit, e.g. 90, 90s, 5m, 1h")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def run(
    phase: Annotated[int, typer.Option("--phase", "-p", help="Phase 0..4 of the config.")],
    users: Annotated[int | None, typer.Option(help="Peak users (default: the gate load).")] = None,
    duration: Annotated[
        str | None, typer.Option(help="Whole run length, e.g. 90s or 10m (scales the stages).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Open model: peak arrivals per second.")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Architecture profile override.")] = None,
    model: Annotated[str | None, typer.Option(help="closed (users) or open (arrivals).")] = None,
    provider: Annotated[str, typer.Option(help="Stack provider: auto, local, containers.")] = (
        "auto"
    ),
    out: Annotated[Path | None, typer.Option(help="Run directory.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Drive this existing deployment instead of a local stack.")
    ] = None,
    credentials: Annotated[
        Path | None, typer.Option(help="Credentials file (needed with --target).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Local Locust workers.")] = default_worker_count(),
    web: Annotated[bool, typer.Option("--web", help="Also serve Locust's web UI.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (fixtures, personas).")] = DEFAULT_SEED,
    fixture_size: Annotated[str | None, typer.Option(help="Fixture size override.")] = None,
    config: Annotated[Path | None, typer.Option(help="Phase config TOML.")] = None,
    master_bind: Annotated[
        str, typer.Option(help="Address the Locust master listens on (remote workers).")
    ] = "127.0.0.1",
    master_port: Annotated[
        int | None, typer.Option(help="Fixed master port (needed with --remote-workers).")
    ] = None,
    service_host: Annotated[
        str,
        typer.Option(
            help="Address of this host the local stack's service listens on, so remote "
            "workers can reach it (default: loopback only)."
        ),
    ] = "127.0.0.1",
    remote_workers: Annotated[
        int, typer.Option(help="Workers joining from other machines ('loadgate worker').")
    ] = 0,
    report: Annotated[
        bool, typer.Option(help="Analyse and write the reports at the end (exit code = verdict).")
    ] = True,
    isolation: Annotated[
        str | None,
        typer.Option(
            help="CPU isolation of the generator from a stack on this host: auto, cpuset, "
            "weights, none (default: the config's isolation)."
        ),
    ] = None,
    generator_cpus: Annotated[
        str | None,
        typer.Option(
            help="The generator's CPUs: auto (half), a count (1) or a list (0-1,3); the stack "
            "gets the rest (default: the config's generator_cpus)."
        ),
    ] = None,
    gate_hold_max: Annotated[
        str | None,
        typer.Option(
            help="Hold an undecided gate step up to this much longer, e.g. 90s, 0 = never "
            "(default: the config's gate_hold_max_s)."
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="Inject a fault, KIND:TARGET@START[+DURATION] (repeatable; replaces the "
            "phase config's faults; 'none' for none), e.g. kill:redis@30s+20s, "
            "pause:pgbouncer@40%+10%, stripe-errors:1.0@60s+20s, cut:osrm@30s+15s, "
            "kill:worker@45s (docs/faults.md).",
        ),
    ] = None,
) -> None:
    """Run one phase: stack up, fixtures, Locust along the phase's stages, reports."""
    # Imported here, not at the top: the pipeline pulls in the stack, the samplers and
    # Locust's helpers, which `loadgate --help` and every other command do not need.
    from loadgate.run import execute
    from loadgate.run.options import RunOptions

    try:
        options = RunOptions(
            phase=phase,
            config_path=config,
            users=users,
            duration_s=parse_duration(duration) if duration else None,
            rate=rate,
            profile=profile,
            model=model,
            provider=provider,
            out=out,
            target=target,
            credentials=credentials,
            workers=workers,
            web=web,
            seed=seed,
            fixture_size=fixture_size,
            master_bind=master_bind,
            service_host=service_host,
            master_port=master_port,
            remote_workers=remote_workers,
            faults=fault,
            isolation=isolation,
            generator_cpus=generator_cpus,
            gate_hold_max_s=(
                parse_duration(gate_hold_max, "--gate-hold-max") if gate_hold_max else None
            ),
        )
        if provider not in PROVIDERS:
            raise ConfigError(f"unknown provider {provider!r}: choose {', '.join(PROVIDERS)}")
        with terminate_on_sigterm():
            result = execute(options, console, progress)
    except ConfigError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    except ServiceNotReady as exc:
        error(str(exc), exc.log_tail)
        raise typer.Exit(2) from None
    except (StackError, FileExistsError) as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        error("run interrupted: raw data flushed so far is kept in the run directory")
        raise typer.Exit(130) from None
    console.print(f"run directory: [bold]{result.run_dir}[/bold]")
    console.print(f"status: {result.status}, {result.requests:,} requests recorded")
    try:
        with terminate_on_sigterm():
            code = finish(result.run_dir, result.status, result.requests, report)
    except KeyboardInterrupt:
        error("interrupted during the report step: the run directory is kept")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def finish(run_dir: Path, status: str, requests: int, report: bool) -> int:
    """Exit code of a run that ended (docs/commands.md, exit codes): the verdict's when the run
    completed and was reported; 3 with the reason when it did not complete or recorded
    nothing; 2 when the report step itself failed (a harness error, not a gate failure);
    with ``--no-report`` 0 for a completed run, 3 otherwise."""
    from reports import EXIT_PASS, EXIT_UNDECIDED, EXIT_USAGE, ReportError

    completed = status == "completed"
    if not completed:
        console.print(f"run not completed ({status}): the verdict is undecided (exit 3)")
    if not report:
        return EXIT_PASS if completed else EXIT_UNDECIDED
    if not requests:
        console.print("no requests were recorded: nothing to decide (exit 3)")
        return EXIT_UNDECIDED
    try:
        code = report_and_print(run_dir)
    except ReportError as exc:
        error(f"report step failed: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a harness error is one line, exit 2
        error(
            f"report step failed ({type(exc).__name__}: {exc}); the run directory is kept: "
            f"retry with 'loadgate report {run_dir}'"
        )
        return EXIT_USAGE
    return code if completed else EXIT_UNDECIDED


def worker(
    master: Annotated[str, typer.Option(help="Host of the run's Locust master.")],
    master_port: Annotated[int, typer.Option(help="The master's port.")] = 5557,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Shared file system only: write raw records into this path (the master's "
            "run directory). Default: send them to the master over Locust's channel."
        ),
    ] = None,
) -> None:
    """Join a run from another machine as a Locust worker (plain ``locust --worker``).

    Without ``--run-dir`` the worker needs no shared disk: its records, and the
    master's plan and credentials, travel over Locust's own message channel."""
    args = [
        *locust_command(),
        "-f",
        LOCUSTFILES,
        "--worker",
        "--master-host",
        master,
        "--master-port",
        str(master_port),
    ]
    if run_dir is not None:
        args += ["--loadgate-run-dir", str(run_dir)]
    else:
        args += ["--loadgate-ship-records"]
    os.execv(sys.executable, args)
