"""The ``loadgate`` command line: one typer app, one sub-app per concept."""

from __future__ import annotations

import typer

from loadgate import (
    ci_cli,
    config_cli,
    fixtures_cli,
    plan_cli,
    report_cli,
    run_cli,
    stack_cli,
    trend_cli,
    verify_cli,
)
from loadgate.reproduce import cli as reproduce_cli

app = typer.Typer(
    name="loadgate",
    help="Load-testing and capacity-planning harness for the Blue Harvests marketplace.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_cli.app, name="stack")
app.add_typer(fixtures_cli.app, name="fixtures")
app.command("run")(run_cli.run)
app.command("worker")(run_cli.worker)
app.command("report")(report_cli.report)
app.command("compare")(report_cli.compare)
app.command("verify")(verify_cli.verify)
app.command("plan")(plan_cli.plan)
app.command("ci", context_settings=ci_cli.PASS_THROUGH)(ci_cli.ci)
app.command("trend")(trend_cli.trend)
app.add_typer(config_cli.app, name="config")
app.command("reproduce")(reproduce_cli.reproduce)


@app.callback()
def main() -> None:
    """Load-testing and capacity-planning harness for the Blue Harvests marketplace."""
