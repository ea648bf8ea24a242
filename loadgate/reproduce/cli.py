"""``loadgate reproduce NAME`` and ``loadgate reproduce --list``.

Exit codes: 0 confirmed, 1 refuted, 3 inconclusive (or a side that did not complete),
2 harness error (bad name, bad config, a stack that cannot start, an output directory in
use: one ``error:`` line, nothing left running), 130 interrupted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from loadgate.console import console, error, progress
from loadgate.signals import terminate_on_sigterm
from runconfig.constants import DEFAULT_SEED
from runconfig.phase_config import ConfigError
from stack.errors import ServiceNotReady, StackError

if TYPE_CHECKING:
    from loadgate.reproduce.runner import Prepared, ReproduceOptions

EXIT_USAGE, EXIT_UNDECIDED, EXIT_INTERRUPTED = 2, 3, 130


def list_lines() -> list[str]:
    """One line per reproduction: name, seed section, what it shows, before → after."""
    from analysis.reproduce import registry

    width = max(len(n) for n in registry.REPRODUCTIONS)
    return [
        f"{r.name:<{width}}  {r.section:<5} {r.description} "
        f"({r.before.describe()} → {r.after.describe()})"
        for r in registry.REPRODUCTIONS.values()
    ]


def default_out(name: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-reproduce-{name}"


def reproduce(
    name: Annotated[str | None, typer.Argument(help="Reproduction (see --list).")] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the reproductions, one line each.")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="The short plan of [reproduce.NAME.quick] (CI).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (before/, after/, reports).")
    ] = None,
    provider: Annotated[str, typer.Option(help="Stack provider: auto, local, containers.")] = (
        "auto"
    ),
    seed: Annotated[int, typer.Option(help="Random seed of both runs.")] = DEFAULT_SEED,
    workers: Annotated[int | None, typer.Option(help="Local Locust workers per run.")] = None,
    config: Annotated[Path | None, typer.Option(help="Phase config TOML.")] = None,
    isolation: Annotated[
        str | None,
        typer.Option(help="CPU isolation of the generator: auto, cpuset, weights, none."),
    ] = None,
    generator_cpus: Annotated[
        str | None, typer.Option(help="The generator's CPUs: auto, a count or a list.")
    ] = None,
) -> None:
    """Check one of the seed's bottleneck claims: the same load plan against a "before" and
    an "after" architecture, both breaking points, and a verdict (confirmed / refuted /
    inconclusive) with a comparison report."""
    # Imported here, not at the top: the registry's metrics and the runner pull in the
    # analysis stack, which `loadgate --help` and the other commands do not need.
    from analysis.reproduce import registry
    from loadgate.reproduce.runner import ReproduceOptions, prepare, run_side

    if list_:
        for line in list_lines():
            console.print(line, soft_wrap=True, markup=False)
        raise typer.Exit(0)
    if name is None:
        error("name a reproduction (loadgate reproduce --list shows them)")
        raise typer.Exit(EXIT_USAGE)
    try:
        repro = registry.get(name)
        if provider not in ("auto", "local", "containers"):
            raise ConfigError(f"unknown provider {provider!r}: choose auto, local or containers")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers {workers}: need at least one Locust worker")
        options = ReproduceOptions(
            name,
            out or default_out(name),
            quick,
            config,
            provider,
            seed,
            workers,
            isolation,
            generator_cpus,
        )
        prepared = prepare(options, repro)
        with terminate_on_sigterm():
            dirs = {
                label: run_side(prepared, options, label, console, progress)
                for label in ("before", "after")
            }
    except ServiceNotReady as exc:
        error(str(exc), exc.log_tail)
        raise typer.Exit(EXIT_USAGE) from None
    except (registry.UnknownReproduction, ConfigError, StackError, FileExistsError) as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        error("reproduction interrupted: the run directories written so far are kept")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(report(prepared, options, dirs["before"], dirs["after"]))


def report(prepared: Prepared, options: ReproduceOptions, before: Path, after: Path) -> int:
    """Analyse both runs, write the comparison reports, print the verdict; the exit code."""
    from loadgate.reproduce.runner import compare_sides
    from reports import ReportError, report_run
    from reports import reproduce as reproduce_report

    try:
        for run_dir in (before, after):  # each side's own run report, as `loadgate run`'s
            report_run(run_dir)
        b, a, outcome = compare_sides(prepared.repro, before, after)
        doc = reproduce_report.document(
            prepared.repro, b, a, outcome, prepared.plan, prepared.spec.phase,
            options.quick, options.out,
        )  # fmt: skip
        paths = reproduce_report.write(doc, options.out)
    except ReportError as exc:
        error(f"comparison failed: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a harness error is one line, exit 2
        error(
            f"comparison failed ({type(exc).__name__}: {exc}); both run directories are kept "
            f"in {options.out}"
        )
        return EXIT_USAGE
    console.print(
        f"[bold]{outcome.verdict.value.upper()}[/bold]: {escape(outcome.reason)}", soft_wrap=True
    )
    for label, side in (("before", b), ("after", a)):
        console.print(f"  {label}: {side.configuration} → {side.run_dir}", markup=False)
    console.print(f"report: {paths['html']}", markup=False)
    return outcome.verdict.exit_code
