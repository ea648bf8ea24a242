"""``loadgate verify``: the marketplace's correctness invariants, against the running stack.

A load run is only worth its numbers if the data is still right afterwards: no
credit ledger that stops adding up, no oversold stock, no order charged twice, no
order lost from its delivery batch (:mod:`marketplace.invariants`). This command
runs those checks against the stack that is up (or the URLs given) and lists each
violation with the ids to look at.

Exit codes (CI relies on them): 0 every invariant holds, 1 violations, 2 usage or
harness error (no stack, unreachable database or Stripe).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from loadgate.console import console, err_console, error

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


class NoTarget(Exception):
    """Nothing to verify against: the message names the fix."""


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which check, the ids involved, and what is wrong."""

    check: str
    ids: dict[str, str]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ids": self.ids, "message": self.message}


def parse_violation(text: str) -> Violation:
    """Split ``marketplace.invariants``' ``"ledger consumer=3 entry=9: problem"`` lines.

    The head names the check (``ledger``, ``stock``, ``charge``, or ``batch=N`` whose
    key is the check) and the ids as ``key=value``; the rest is the problem.
    """
    head, sep, message = text.partition(": ")
    if not sep:
        return Violation("other", {}, text)
    tokens = head.split()
    ids = dict(t.split("=", 1) for t in tokens if "=" in t)
    check = tokens[0].split("=", 1)[0] if tokens else "other"
    return Violation(check, ids, message)


def stack_urls() -> dict[str, str]:
    """Service name -> URL of the stack that is up (``loadgate stack up --detach``)."""
    from stack.state import read_state

    state = read_state()
    if state is None:
        raise NoTarget(
            "no stack is up: start one with 'loadgate stack up --detach' "
            "or pass --database-url (and --stripe-url)"
        )
    return {s["name"]: s["url"] for s in state.get("services", [])}


def resolve_urls(database_url: str | None, stripe_url: str | None) -> tuple[str, str | None]:
    """The URLs given, else the running stack's; Stripe is optional (its checks skipped)."""
    if database_url and stripe_url:
        return database_url, stripe_url
    try:
        urls = stack_urls()
    except NoTarget:
        if database_url:  # a database alone is a complete, if partial, target
            return database_url, None
        raise
    database_url = database_url or urls.get("postgres")
    if not database_url:
        raise NoTarget(
            "the stack that is up has no postgres service: "
            "bring one up with 'loadgate stack up --detach' or pass --database-url"
        )
    return database_url, stripe_url or urls.get("stripe")


def violations_table(violations: list[Violation]) -> Table:
    table = Table(title=f"{len(violations)} invariant violation(s)", title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("ids", no_wrap=True)
    table.add_column("problem")
    for v in violations:
        ids = " ".join(f"{k}={val}" for k, val in v.ids.items())
        table.add_row(v.check, ids, v.message)
    return table


def per_check(violations: list[Violation]) -> dict[str, int]:
    """Violations per check (``ledger``, ``lost-order``, ...), most first."""
    return dict(Counter(v.check for v in violations).most_common())


def print_human(
    checked: dict[str, int],
    violations: list[Violation],
    stripe: bool,
    acknowledged: dict[str, Any] | None = None,
) -> None:
    counts = ", ".join(f"{k}={n}" for k, n in checked.items())
    console.print(f"checked {counts}", soft_wrap=True)
    if acknowledged is not None:
        told = ", ".join(f"{k}={n}" for k, n in sorted(acknowledged["acknowledged"].items()))
        if not acknowledged["recorded"]:
            err_console.print("[dim]the run recorded no acknowledged writes (older format)[/dim]")
        console.print(f"acknowledged writes: {told or 'none'}", soft_wrap=True)
    if not stripe:
        err_console.print("[dim]no Stripe URL: charge checks skipped[/dim]")
    if violations:
        console.print(violations_table(violations))
        kinds = ", ".join(f"{k}={n}" for k, n in per_check(violations).items())
        console.print(f"violations per kind: {kinds}", soft_wrap=True)
    else:
        console.print("[bold green]verify: OK[/bold green], every invariant holds")


def print_json(
    checked: dict[str, int],
    violations: list[Violation],
    stripe: bool,
    acknowledged: dict[str, Any] | None = None,
) -> None:
    # plain print: rich would wrap and colour, and this is for machines
    body = {
        "ok": not violations,
        "checked": checked,
        "stripe_checked": stripe,
        "violations": [v.as_dict() for v in violations],
        "counts": per_check(violations),
    }
    if acknowledged is not None:
        body["acknowledged"] = acknowledged
    print(json.dumps(body, indent=2))


def from_verify_json(run_dir: Path) -> dict[str, Any] | None:
    """What the run itself checked before its stack went down (``verify.json``), if any."""
    from loadgate.aftercheck import VERIFY_FILE

    path = run_dir / VERIFY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def verify(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Postgres DSN (default: the running stack's)."),
    ] = None,
    stripe_url: Annotated[
        str | None,
        typer.Option("--stripe-url", help="Stripe API base (default: the running stack's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A run directory: also reconcile every write the service acknowledged "
            "during that run with the database (no stack up: show the run's verify.json).",
        ),
    ] = None,
) -> None:
    """Check the data invariants (ledger, stock, charges, batches); exit 1 on violations.

    With ``--run``, also every write acknowledged during that run (orders, cart units,
    payouts, claims, stops) must be in the database (issue 21).
    """
    from marketplace.invariants import verify as run_invariants

    if run_dir is not None and not (run_dir / "manifest.json").is_file():
        error(
            f"{run_dir} is not a run directory (no manifest.json): pass the directory "
            "'loadgate run' wrote, e.g. runs/<run_id>"
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        db_url, stripe = resolve_urls(database_url, stripe_url)
    except NoTarget as exc:
        recorded = from_verify_json(run_dir) if run_dir is not None else None
        if recorded is None or "violations" not in recorded:
            error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        err_console.print(f"[dim]{exc}; showing the run's own check (verify.json)[/dim]")
        violations = [parse_violation(v) for v in recorded["violations"]]
        (print_json if as_json else print_human)(
            recorded.get("checked", {}),
            violations,
            bool(recorded.get("stripe_checked")),
            recorded.get("acknowledged"),
        )
        raise typer.Exit(EXIT_VIOLATIONS if violations else EXIT_OK) from None
    key = os.environ.get("LOADGATE_STRIPE_KEY", "sk_test_loadgate")
    try:
        report = run_invariants(db_url, stripe, key)
    except Exception as exc:  # unreachable DB or Stripe, missing tables: a harness problem
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        error(
            f"verify could not run ({type(exc).__name__}: {first}): "
            "check that the stack is up and migrated ('loadgate stack status')"
        )
        raise typer.Exit(EXIT_USAGE) from None
    acknowledged = None
    lines = list(report.violations)
    if run_dir is not None:
        from loadgate.aftercheck import reconcile_run

        try:
            reconciliation = reconcile_run(db_url, stripe, run_dir)
        except Exception as exc:  # unreadable events, unreachable DB: a harness problem
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            error(
                f"could not reconcile {run_dir} ({type(exc).__name__}: {first}): check "
                "that the stack that ran it is still up and the events are readable"
            )
            raise typer.Exit(EXIT_USAGE) from None
        acknowledged = reconciliation.as_dict()
        lines += reconciliation.violations
    violations = [parse_violation(v) for v in lines]
    (print_json if as_json else print_human)(
        report.checked, violations, stripe is not None, acknowledged
    )
    raise typer.Exit(EXIT_VIOLATIONS if violations else EXIT_OK)
