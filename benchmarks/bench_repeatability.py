"""Benchmark: do a run's intervals describe how much the gate figures move between runs?

    .venv/bin/python benchmarks/bench_repeatability.py [--runs 5] [--dir .cache/repeat] \
        [-- EXTRA loadgate run ARGS]

Runs ``loadgate run --phase 1`` (the default main job; extra arguments after ``--`` are
passed through) N times into separate run directories DIR/<UTC time>/run-1..N, then analyses
each and prints a Markdown table: run, gate P95 with its 95 % interval, error rate with
its interval, verdict, and for each run's intervals how many of the N point values they
cover; then the spread of the point values.  The goal (issue 8) is that every interval
covers at least N - 1 of the N values and the verdict never flips between PASS and FAIL.
``--analyse-only --dir DIR/<UTC time>`` re-tabulates an existing set without running.
Not a timed test: run it on a quiet machine, since load and timing depend on the box.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class RunRow:
    """Gate figures of one run directory."""

    name: str
    verdict: str
    p95_ms: float | None
    p95_ci: tuple[float, float] | None
    error_rate: float | None
    error_ci: tuple[float, float] | None


def _criterion(result, name: str):
    return next((c for c in result.gate.criteria if c.name == name), None)


def read_row(run_dir: Path) -> RunRow:
    """Analyse one run directory and pull out its gate P95, error rate and verdict."""
    import analysis

    result = analysis.analyze(analysis.load_run(run_dir))
    p95, err = _criterion(result, "p95_ms"), _criterion(result, "error_rate")
    point = p95.value if p95 else None
    if point is None:  # no interval (insufficient data): the gate step's point still counts
        st = next((s for s in result.steps if s.step.name == result.gate.step), None)
        point = st.latency.p(0.95).value_ms if st else None
    return RunRow(
        run_dir.name,
        result.verdict,
        point,
        p95.ci if p95 else None,
        err.value if err else None,
        err.ci if err else None,
    )


def covers(ci: tuple[float, float] | None, values: list[float | None]) -> int | None:
    """How many of the point values lie inside the interval (None: no interval)."""
    if ci is None:
        return None
    return sum(1 for v in values if v is not None and ci[0] <= v <= ci[1])


def _ms(v: float | None, ci: tuple[float, float] | None) -> str:
    if v is None:
        return "n/a"
    span = f" [{ci[0]:,.0f}–{ci[1]:,.0f}]" if ci else " [no interval]"
    return f"{v:,.0f} ms{span}"


def _pct(v: float | None, ci: tuple[float, float] | None) -> str:
    if v is None:
        return "n/a"
    span = f" [{ci[0]:.2%}–{ci[1]:.2%}]" if ci else " [no interval]"
    return f"{v:.2%}{span}"


def _spread(values: list[float | None], fmt) -> str:
    vs = [v for v in values if v is not None]
    if not vs:
        return "n/a"
    sd = statistics.stdev(vs) if len(vs) > 1 else 0.0
    return f"{fmt(min(vs))}–{fmt(max(vs))} (sd {fmt(sd)})"


def table(rows: list[RunRow]) -> str:
    """Markdown table of the runs, their coverage of each other, and the spread."""
    n = len(rows)
    p95s = [r.p95_ms for r in rows]
    errs = [r.error_rate for r in rows]
    lines = [
        "| run | gate P95 [95% interval] | P95 interval covers | errors [95% interval] "
        "| error interval covers | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cp, ce = covers(r.p95_ci, p95s), covers(r.error_ci, errs)
        lines.append(
            f"| {r.name} | {_ms(r.p95_ms, r.p95_ci)} | "
            f"{'–' if cp is None else f'{cp} of {n}'} | {_pct(r.error_rate, r.error_ci)} | "
            f"{'–' if ce is None else f'{ce} of {n}'} | {r.verdict} |"
        )
    verdicts = {r.verdict for r in rows}
    flips = "yes" if {"PASS", "FAIL"} <= verdicts else "no"
    lines += [
        "",
        f"- P95 spread: {_spread(p95s, lambda v: f'{v:,.0f} ms')}",
        f"- error-rate spread: {_spread(errs, lambda v: f'{v:.2%}')}",
        f"- verdict flips between PASS and FAIL: {flips}",
    ]
    return "\n".join(lines)


def run_once(run_dir: Path, extra: list[str]) -> int:
    """One ``loadgate run --phase 1`` into ``run_dir``; its exit code (1 and 3 are verdicts)."""
    cmd = [str(ROOT / ".venv" / "bin" / "loadgate"), "run", "--phase", "1", "--out"]
    proc = subprocess.run([*cmd, str(run_dir), *extra], cwd=ROOT)
    return proc.returncode


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=ROOT / ".cache" / "repeat")
    ap.add_argument("--analyse-only", action="store_true", help="tabulate existing run dirs")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to loadgate run")
    args = ap.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    base = args.dir
    if not args.analyse_only:  # a fresh set each time: never mix with an earlier set
        base = args.dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base.mkdir(parents=True)
        print(f"run directories: {base}", file=sys.stderr)
    dirs = [base / f"run-{i}" for i in range(1, args.runs + 1)]
    if not args.analyse_only:
        for d in dirs:
            code = run_once(d, extra)
            if code == 2:
                sys.exit(f"error: loadgate run failed for {d} (exit 2); fix the error above")
    print(table([read_row(d) for d in dirs]))


if __name__ == "__main__":
    main()
