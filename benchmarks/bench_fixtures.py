"""Benchmark: load the phase2 fixture size (100k consumers, 1M ledger rows, 120k orders
with their items, batches and stops).

Goal (issue 10, item 4): >= 150,000 rows/s end to end on the 2-core CI machine,
from nothing to a loaded, analysed database plus the credentials file. The goal
is a rate, not a wall time, so it scales with the rows a size has (the order
history made the sets larger). Brings up its own local Postgres + OSRM (or uses
--database-url/--osrm-url), applies the phase1 migrations, then times
:func:`fixtures.load.load` end to end.

    .venv/bin/python benchmarks/bench_fixtures.py [--size phase2] [--repeat 2] [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

from fixtures.generate import LOAD_ORDER
from fixtures.load import LoadReport, StepEvent, load
from marketplace.auth import generate_secret
from runconfig.constants import DEFAULT_SEED
from runconfig.sizes import get_size
from stack.config import StackConfig
from stack.stack import Stack

GOAL_ROWS_PER_S = 150_000.0


def main() -> int:
    args = _parse()
    with ExitStack() as cleanup:
        dsn, osrm = args.database_url, args.osrm_url
        if not (dsn and osrm):
            started = time.perf_counter()
            stack = cleanup.enter_context(
                Stack(StackConfig(provider="local", services=("postgres", "osrm")))
            )
            dsn, osrm = dsn or stack.url("postgres"), osrm or stack.url("osrm")
            print(f"stack up in {time.perf_counter() - started:.1f} s (not counted)")
        creds = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) / "credentials.csv"
        worst = float("inf")
        for run in range(1, args.repeat + 1):
            report = load(
                dsn,
                get_size(args.size),
                args.seed,
                osrm,
                creds,
                progress=_print_step,
                secret=generate_secret(),  # throwaway: the tokens are only timed here
            )
            _print_report(run, report)
            worst = min(worst, report.total_rows / report.seconds)
        if args.check:
            _check_chain(dsn)
    verdict = "PASS" if worst >= GOAL_ROWS_PER_S else "FAIL"
    print(f"{verdict}: slowest load {worst:,.0f} rows/s (goal >= {GOAL_ROWS_PER_S:,.0f} rows/s)")
    return 0 if verdict == "PASS" else 1


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="phase2")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=1, help="loads in a row (reloads)")
    parser.add_argument("--database-url")
    parser.add_argument("--osrm-url")
    parser.add_argument("--check", action="store_true", help="verify the ledger chain in SQL")
    return parser.parse_args()


def _print_step(event: StepEvent) -> None:
    if event.seconds is not None:
        rows = f"{event.rows:>10,}" if event.rows is not None else " " * 10
        print(f"  {event.step:<16} {rows} rows  {event.seconds:6.2f} s", flush=True)


def _print_report(run: int, report: LoadReport) -> None:
    """Where the wall time went, by phase of the load.

    Drawing the tables overlaps the truncate and the COPY (the per-table steps
    include it), and ANALYZE overlaps the credentials step, so the phases add up
    to more than the wall time; "of which" lines are inside the line above them.
    """
    seconds = report.step_seconds
    copy = sum(seconds.get(t, 0.0) for t in LOAD_ORDER)
    phases = {
        "setup (migrate, address pool)": seconds.get("migrate", 0.0) + seconds["address pool"],
        "draw + COPY (truncate, tables)": copy + seconds.get("truncate", 0.0),
        "  of which drawing (numpy)": report.generate_seconds,
        "indexes + keys + FKs": seconds["indexes"] + seconds.get("sequences", 0.0),
        "analyze (during credentials)": seconds["analyze"],
        "credentials (wait + write)": seconds.get("credentials", 0.0),
    }
    print(f"run {run} breakdown:")
    for phase, value in phases.items():
        print(f"  {phase:<32} {value:6.2f} s")
    ledger = report.rows["credits_ledger"]
    ledger_s = seconds["credits_ledger"]
    print(
        f"run {run}: {report.total_rows:,} rows in {report.seconds:.2f} s wall = "
        f"{report.total_rows / report.seconds:,.0f} rows/s overall; "
        f"credits_ledger COPY {ledger:,} rows in {ledger_s:.2f} s = {ledger / ledger_s:,.0f} rows/s"
    )
    print(
        "  rows/s counts the rows COPYed into all fixture tables, divided by the wall time of"
        " load() end to end (migrate to credentials file; stack start-up not counted)"
    )


def _check_chain(dsn: str) -> None:
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        broken = conn.execute(
            "SELECT count(*) FROM (SELECT balance_after, amount,"
            " lag(balance_after) OVER (PARTITION BY consumer_id ORDER BY id) AS previous"
            " FROM credits_ledger) c WHERE balance_after <> coalesce(previous, 0) + amount"
        ).fetchone()[0]
    print(f"ledger chain check: {broken} broken rows ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
