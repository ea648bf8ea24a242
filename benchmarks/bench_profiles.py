"""Benchmark: where does each architecture profile break under phase 1's stepped ramp?

    .venv/bin/python benchmarks/bench_profiles.py [--runs 2] [--profiles phase0,phase1,...] \
        [--dir .cache/profiles] [-- EXTRA loadgate run ARGS]

Runs ``loadgate run --phase 1 --profile P`` (the same stepped ramp to 1,500 users, same
fixtures and seed) for each profile, N times, into DIR/<UTC time>/<profile>-run-<i>, then
prints one Markdown row per run: the first constraint reached (the headroom's binding
constraint, measured or projected, with its interval), the highest step's throughput,
P95 and error rate, the first step whose error rate exceeds 1 %, DB connection errors, the
verdict and the validity checks that failed.  Then, per profile, the spread over its runs.

``--analyse-only --dir DIR/<UTC time>`` re-tabulates an existing set.  Issue 10 asks for
"per profile the user count where the first constraint binds, measured with the same
stepped ramp"; this is that measurement.  Not a timed test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_repeatability import _criterion, run_once  # noqa: E402

from runconfig.constants import PROFILES  # noqa: E402

ERROR_STEP_BOUND = 0.01  # "errors appear": a step's error rate above 1 %


@dataclass
class ProfileRow:
    """What one run of one profile measured."""

    profile: str
    run: str
    verdict: str
    binding: str  # e.g. "latency SLO at 560 users [510–610] (measured)"
    binding_load: float | None
    x_max: float | None  # highest steady-state step throughput, req/s
    top_users: float | None
    top_p95_ms: float | None
    top_error_rate: float | None
    first_error_step_users: float | None
    db_connection_errors: float | None
    invalid_because: str
    cpu_ms_per_request: dict[str, float]  # at the step of highest throughput


def cpu_per_request(step) -> dict[str, float]:
    """CPU milliseconds each sampled process spent per request at one step.

    The utilisation law (U = X * D) read backwards: D = U / X. On a box shared by the
    stack, the generator and the harness, the sum bounds throughput at
    cores / D_total, whatever the architecture.
    """
    out: dict[str, float] = {}
    if not step.throughput_rps:
        return out
    for source, metrics in step.resources.items():
        if source.startswith("process:") and "cpu_percent" in metrics:
            share = metrics["cpu_percent"] / 100.0
            out[source.removeprefix("process:")] = 1000.0 * share / step.throughput_rps
    return out


def _binding(result) -> tuple[str, float | None]:
    b = result.headroom.binding
    if b is None:
        return "none reached", None
    where = f"{b.load:,.0f} users"
    if b.ci:
        lo, hi = b.ci
        where += f" [{lo:,.0f}–{hi:,.0f}]"
    return f"{b.name} at {where} ({b.basis})", b.load


def read_row(run_dir: Path) -> ProfileRow:
    """Analyse one run directory of ``profile-run-i``."""
    import analysis

    result = analysis.analyze(analysis.load_run(run_dir))
    steps = result.steps
    top = max(steps, key=lambda s: s.users_observed) if steps else None
    peak = max(steps, key=lambda s: s.throughput_rps) if steps else None
    first_err = next((s for s in steps if s.error_rate > ERROR_STEP_BOUND), None)
    dbc = _criterion(result, "db_connection_errors")
    failed = sorted({c.name for c in result.checks if c.decides and c.ok is False})
    binding, load = _binding(result)
    profile, _, run = run_dir.name.rpartition("-run-")
    return ProfileRow(
        profile=result.profile or profile,
        run=run,
        verdict=result.verdict,
        binding=binding,
        binding_load=load,
        x_max=max((s.throughput_rps for s in steps), default=None),
        top_users=top.users_observed if top else None,
        top_p95_ms=top.latency.p(0.95).value_ms if top else None,
        top_error_rate=top.error_rate if top else None,
        first_error_step_users=first_err.users_observed if first_err else None,
        db_connection_errors=dbc.value if dbc else None,
        invalid_because=", ".join(failed) or "–",
        cpu_ms_per_request=cpu_per_request(peak) if peak else {},
    )


def _num(v: float | None, fmt: str = ",.0f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{fmt}}{unit}"


def table(rows: list[ProfileRow]) -> str:
    """Markdown table of every run, then each profile's spread of the binding load."""
    lines = [
        "| profile | run | first constraint reached | X_max req/s | top step: users, P95, "
        "errors | errors > 1 % from | DB conn. errors | verdict (failed checks) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = (
            f"{_num(r.top_users)}, {_num(r.top_p95_ms, ',.0f', ' ms')}, "
            f"{_num(r.top_error_rate, '.2%')}"
        )
        first = "never" if r.first_error_step_users is None else f"{r.first_error_step_users:,.0f}"
        lines.append(
            f"| {r.profile} | {r.run} | {r.binding} | {_num(r.x_max)} | {top} | {first} "
            f"| {_num(r.db_connection_errors)} | {r.verdict} ({r.invalid_because}) |"
        )
    lines.append("")
    for profile in dict.fromkeys(r.profile for r in rows):
        loads = [r.binding_load for r in rows if r.profile == profile and r.binding_load]
        spread = f"{min(loads):,.0f}–{max(loads):,.0f} users" if loads else "none reached"
        lines.append(f"- {profile}: first constraint at {spread} over {len(loads)} run(s)")
    lines += ["", "CPU ms per request at each run's highest-throughput step:", ""]
    for r in rows:
        parts = sorted(r.cpu_ms_per_request.items(), key=lambda kv: -kv[1])
        total = sum(v for _, v in parts)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in parts if v >= 0.05)
        lines.append(f"- {r.profile} run {r.run}: total {total:.1f} ({shown})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--dir", type=Path, default=ROOT / ".cache" / "profiles")
    ap.add_argument("--analyse-only", action="store_true", help="tabulate existing run dirs")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to loadgate run")
    args = ap.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    base = args.dir
    if args.analyse_only:
        dirs = sorted(d for d in base.iterdir() if d.is_dir() and "-run-" in d.name)
    else:  # a fresh set each time: never mix with an earlier set
        base = args.dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base.mkdir(parents=True)
        print(f"run directories: {base}", file=sys.stderr)
        dirs = []
        for i in range(1, args.runs + 1):  # interleaved: drift on the box hits every profile
            for profile in args.profiles.split(","):
                d = base / f"{profile}-run-{i}"
                if run_once(d, ["--profile", profile, *extra]) == 2:
                    sys.exit(f"error: loadgate run failed for {d} (exit 2); fix the error above")
                dirs.append(d)
    print(table([read_row(d) for d in dirs]))


if __name__ == "__main__":
    main()
