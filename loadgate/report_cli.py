"""``loadgate report`` and ``loadgate compare``: analyse run directories, decide.

Exit codes (CI relies on them): 0 every gate criterion passed as measured,
1 a gate failed or a regression, 2 usage or harness error, 3 not enough data
to decide (a projected verdict or too few samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from loadgate.console import console, error

EXIT_USAGE = 2


def print_summary(summary_md: Path) -> None:
    """The Markdown summary's first lines: verdict first, as leadership reads it."""
    lines = summary_md.read_text().splitlines()
    console.print(Markdown("\n".join(lines[:14])))


def report_and_print(run_dir: Path, out: Path | None = None, baseline: Path | None = None) -> int:
    """Analyse a run, write every report, print the verdict; returns the exit code."""
    from reports import report_run

    code, paths = report_run(run_dir, out, baseline)
    if paths is None:
        error(
            f"{run_dir} is not a readable run directory (no manifest.json or no events): "
            "pass the directory 'loadgate run' printed"
        )
        return EXIT_USAGE
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
    raise typer.Exit(report_and_print(run_dir, out, baseline))


def compare(
    run_dir: Annotated[Path, typer.Argument(help="The run to judge.")],
    baseline_dir: Annotated[Path, typer.Argument(help="The baseline run.")],
    out: Annotated[Path | None, typer.Option(help="Where to write (default RUN/report).")] = None,
) -> None:
    """Regression test against a baseline: Mann-Whitney U, Hodges-Lehmann shift, tolerance."""
    import analysis
    from analysis.compare import compare_runs
    from reports import exit_code, write_comparison

    try:
        run, base = analysis.load_run(run_dir), analysis.load_run(baseline_dir)
    except analysis.RunFormatError as exc:
        error(f"{exc}: pass two directories written by 'loadgate run'")
        raise typer.Exit(EXIT_USAGE) from None
    comparison = compare_runs(run, base)
    paths = write_comparison(comparison, out or run_dir / "report")
    for item in [comparison.overall, *comparison.endpoints]:
        shift = f"{item.relative_shift:+.1%}" if item.relative_shift is not None else "-"
        console.print(f"{item.endpoint:<45} {item.verdict:<18} shift {shift}")
    console.print(f"verdict: [bold]{comparison.verdict}[/bold]  ({paths.md})")
    raise typer.Exit(exit_code(None, comparison))
