"""``loadgate plan RUN... [--phase N] [--out DIR]``: the capacity plan for M1–M4.

Measures each request's cost per resource in the runs (analysis/demands.py), projects every
milestone with operational laws (analysis/plan/) and writes the leadership page
(plan.html, plan.md) and plan.json.  A plan is a projection, never a gate: exit 0 when it
was written, 2 (one ``error:`` line) when a run directory is missing or unusable or the
output cannot be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from loadgate.console import console, error
from runconfig.constants import HPA_TARGET_UTILISATION as PLANNING_UTILISATION

EXIT_USAGE = 2


def plan(
    runs: Annotated[list[Path], typer.Argument(help="One or more run directories (pooled).")],
    phase: Annotated[
        int | None, typer.Option(help="Only milestone M<phase> (1-4); default M1-M4.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default RUN/plan).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Phase config with the milestones' users and mix.")
    ] = None,
    utilisation: Annotated[
        float, typer.Option(help="Planning utilisation of every resource (0-1].")
    ] = PLANNING_UTILISATION,
) -> None:
    """Capacity plan for milestones M1-M4 from the measured service demands of runs."""
    for path in runs:
        if not path.is_dir():
            error(f"{path}: no such run directory; pass directories written by 'loadgate run'")
            raise typer.Exit(EXIT_USAGE)
    from analysis.plan import RELIABLE_BACKTEST_ERROR, PlanError
    from analysis.plan import plan as make_plan
    from reports import ReportError, load_checked
    from reports.plan_report import write

    try:
        loaded = [load_checked(p) for p in runs]
        result = make_plan(loaded, phase=phase, config=config, utilisation=utilisation)
    except (ReportError, PlanError) as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    target = out or runs[0] / "plan"
    try:
        paths = write(result, target)
    except OSError as exc:
        why = exc.strerror or exc
        error(f"cannot write the plan to {target}: {why}; pass --out a writable directory")
        raise typer.Exit(EXIT_USAGE) from None
    for m in result.milestones:
        console.print(
            f"{m.milestone} ({m.users:,} users, projected): [bold]{escape(m.headline)}[/bold] — "
            + escape(m.verdict_text),
            soft_wrap=True,
        )
        for caveat in m.caveats:
            console.print(f"  {escape(caveat)}", soft_wrap=True)
    for g in result.generator:
        console.print(f"{g.milestone}: {g.cores:,} load-generator worker cores ({g.demand.basis})")
    for b in result.backtests:
        worst = "n/a" if b.max_error is None else f"{b.max_error:.1%}"
        bad = b.max_error is not None and b.max_error > RELIABLE_BACKTEST_ERROR
        flag = f" (unreliable: above {RELIABLE_BACKTEST_ERROR:.0%})" if bad else ""
        console.print(
            f"backtest {b.run_id}: largest prediction error {worst} at {b.target_step}{flag}"
        )
    if result.unreliable:
        console.print(f"[bold]{escape(result.unreliable)}[/bold]", soft_wrap=True)
    console.print(f"plan: {paths.html}  {paths.md}  {paths.json}")
