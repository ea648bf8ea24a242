"""``loadgate report`` and ``loadgate compare``: analyse run directories, decide.

Exit codes (CI relies on them; the table is ``runformat.verdicts.EXIT_CODES``): 0 every gate
criterion passed as measured (or no gate on a valid run), 1 a gate failed or a
regression, 2 usage or harness error (one ``error:`` line, never a traceback), 3 not
enough data to decide (projected, inconclusive, invalid or too few samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from loadgate.console import console, error

EXIT_USAGE = 2


def print_summary(summary_md: Path) -> None:
    """The Markdown summary's verdict block and whole criteria table, as leadership reads
    it: everything before the first section heading (``### Steps``).

    Why not a fixed line count: the verdict block grows with its reasons (lost files,
    incidents, advice), and a cut inside the table printed its header with no rows.
    """
    lines = summary_md.read_text().splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("### ")), len(lines))
    console.print(Markdown("\n".join(lines[:end]).rstrip()))


def report_and_print(run_dir: Path, out: Path | None = None, baseline: Path | None = None) -> int:
    """Analyse a run, write every report, print the verdict; returns the exit code.

    Raises ``reports.ReportError`` (one line for the user) when the run directory is not
    reportable or the reports cannot be written.
    """
    from reports import report_run

    code, paths = report_run(run_dir, out, baseline)
    print_summary(paths.md)
    console.print(f"reports: {paths.html}  {paths.md}  {paths.json}  {paths.junit}")
    return code


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    baseline: Annotated[
        Path | None, typer.Option(help="Also compare with this baseline run.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default RUN/report).")] = None,
) -> None:
    """Analyse a run and write the HTML, Markdown, JSON and JUnit reports."""
    for path in (run_dir, baseline):
        if path is not None and not path.is_dir():
            error(f"{path}: no such run directory")
            raise typer.Exit(EXIT_USAGE)
    from reports import ReportError  # the analysis stack: only once there is a run to read

    try:
        code = report_and_print(run_dir, out, baseline)
    except ReportError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)


def compare(
    run_dir: Annotated[Path, typer.Argument(help="The run to judge.")],
    baseline_dir: Annotated[Path, typer.Argument(help="The baseline run.")],
    out: Annotated[Path | None, typer.Option(help="Where to write (default RUN/report).")] = None,
) -> None:
    """Regression test against a baseline: errors, latency shift and tails, with tolerance."""
    for path in (run_dir, baseline_dir):
        if not path.is_dir():
            error(f"{path}: no such run directory")
            raise typer.Exit(EXIT_USAGE)
    from reports import ReportError, compare_dirs, exit_code, write_comparison

    try:
        comparison = compare_dirs(run_dir, baseline_dir)
        paths = write_comparison(comparison, out or run_dir / "report")
    except ReportError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    for item in [comparison.overall, *comparison.endpoints]:
        shift = f"{item.relative_shift:+.1%}" if item.relative_shift is not None else "-"
        errors = (
            f"{item.errors.diff * 100:+.2f} pp"
            if item.errors is not None and item.errors.diff is not None
            else "-"
        )
        console.print(
            f"{item.endpoint:<45} {item.verdict:<18} shift {shift:>7}  errors {errors}",
            soft_wrap=True,
        )
    console.print(f"verdict: [bold]{comparison.verdict}[/bold]  ({paths.md})")
    raise typer.Exit(exit_code(None, comparison))
