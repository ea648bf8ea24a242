"""``loadgate trend RUNS... [--last N] [--out DIR]``: a phase gate over nights.

Exit codes: 0 the trend was written (whatever it shows: it is a picture, the verdicts
stay with ``run``/``ci``), 2 bad input (one ``error:`` line: a path that is not a run
directory, runs of different phases, an unwritable ``--out``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loadgate.console import console, error

EXIT_USAGE = 2


def trend(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (e.g. runs/*).")],
    last: Annotated[
        int | None, typer.Option(help="Only the last N runs by the manifest's start time.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write trend.html/.md/.json.")] = Path("trend"),
) -> None:
    """Gate P95, error rate, throughput and binding constraint over runs, regressions marked."""
    from analysis.trend import TrendError, build_trend, order_runs
    from reports import ReportError, load_checked
    from reports import trend as trend_report

    try:
        paths = order_runs(runs, last)
        result = build_trend(paths, load_checked)
    except (TrendError, ReportError) as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - the analysis of a malformed run: one line
        error(
            f"analysing the runs failed ({type(exc).__name__}: {exc}); check each with "
            "'loadgate report RUN', or report this loadgate bug"
        )
        raise typer.Exit(EXIT_USAGE) from None
    try:
        written = trend_report.write(result, out)
    except OSError as exc:
        error(f"cannot write the trend to {out}: {exc.strerror or exc}; pass --out a writable DIR")
        raise typer.Exit(EXIT_USAGE) from None
    for p in result.points:
        mark = "REGRESSION" if p.regression else (p.comparison or "")
        where = "" if p.on_line else "  (not on the line)"
        console.print(f"{p.started_at[:19]}  {p.run_id:<32} {p.verdict:<13} {mark}{where}")
    console.print(f"trend: {written.html}  {written.md}  {written.json}")
