"""``loadgate ci``: the nightly job in one command, the same on a laptop and in CI.

Steps: run the phase gate (``loadgate run --phase N --provider P`` with any other run
option passed through), or take an existing run with ``--run-dir``; find a baseline run
under ``--baseline DIR`` (none is a note, not an error); analyse, compare with the
baseline, write the reports into ``RUN/report`` with ``ci.json``; write the Markdown
summary to ``--summary FILE`` or ``$GITHUB_STEP_SUMMARY``; set ``$GITHUB_OUTPUT``
values when it is set; exit with:

====  ========  ==========================================================================
exit  outcome   when
====  ========  ==========================================================================
0     pass      PASS, or NO GATE on a valid run; no regression against the baseline
1     fail      FAIL: a criterion measured at the gate load on the wrong side
1     regress.  ``loadgate compare`` found a regression (tonight's run is not INVALID)
3     neutral   INCONCLUSIVE, INVALID or PROJECTED (``runformat.verdicts.EXIT_CODES``)
2     error     bad options, a stack that cannot start, a run that cannot be analysed
130   stopped   interrupted (Ctrl-C, SIGTERM)
====  ========  ==========================================================================

A regression found against an INVALID run is shown but not counted: that run's numbers
describe the harness (docs/ci.md).  An INVALID baseline is not compared with, for the
same reason.  ``baseline_candidate`` in ci.json says whether this run may serve as the
next night's baseline: valid, and neither failed nor regressed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from loadgate.console import console, error
from runformat.manifest import RunFormatError, iso_to_us, read_manifest
from runformat.verdicts import EXIT_CODES, HARNESS_ERROR_EXIT, Verdict

EXIT_PASS = EXIT_CODES[Verdict.PASS]
EXIT_FAIL = EXIT_CODES[Verdict.FAIL]
EXIT_NEUTRAL = EXIT_CODES[Verdict.INCONCLUSIVE]
EXIT_INTERRUPTED = 130
CI_SCHEMA = "loadgate.ci/1"
#: Click settings of the ``ci`` command: options it does not know go to ``loadgate run``.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
#: ``loadgate run`` options ci sets itself (they cannot be passed through).
OWN_RUN_OPTIONS = ("--report", "--no-report")
ICON = {
    "pass": "✅",
    "fail": "❌",
    "regression": "❌",
    "neutral": "⚪",
    "error": "💥",
    "stopped": "⏹",
}


@dataclass
class CiResult:
    """What ci decided, as written to ci.json (and ``$GITHUB_OUTPUT``)."""

    outcome: str  # pass | fail | regression | neutral | error
    exit_code: int
    run_dir: str | None
    verdict: str | None = None
    regression: bool | None = None  # None: not compared
    comparison: str | None = None  # compare's verdict, e.g. "no change"
    baseline: str | None = None
    baseline_note: str = ""
    baseline_candidate: bool = False
    notes: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": CI_SCHEMA, **asdict(self)}


def run_gate(args: list[str]) -> int:
    """``loadgate run ARGS`` in this process; its exit code (2 for bad options)."""
    from loadgate import run_cli

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(run_cli.run)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="loadgate run", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # not a usage error (click's UsageError)
            raise
        error(f"loadgate run: {exc.format_message()}; see 'loadgate run --help'")
        return HARNESS_ERROR_EXIT
    return code if isinstance(code, int) else EXIT_PASS


def _started_us(run_dir: Path) -> int | None:
    try:
        return iso_to_us(read_manifest(run_dir).started_at)
    except (RunFormatError, ValueError):
        return None


def find_baseline(where: Path | None, run_dir: Path, phase: int | None) -> tuple[Path | None, str]:
    """The baseline run under ``where``: the directory itself when it is a run, else the
    newest run of the same phase below it (by the manifest's start time), never
    ``run_dir`` itself.  Returns (run or None, a note saying what was found)."""
    if where is None:
        return None, "no baseline given (--baseline DIR): nothing to compare with"
    if not where.is_dir() or not any(where.iterdir()):
        return None, f"no baseline: {where} is missing or empty (first run, or none was kept)"
    candidates = [m.parent for m in where.rglob("manifest.json")]
    runs = []
    for cand in candidates:
        if cand.resolve() == run_dir.resolve():
            continue
        try:
            manifest = read_manifest(cand)
        except RunFormatError:
            continue
        started = _started_us(cand)
        if manifest.phase == phase and started is not None:
            runs.append((started, cand.name, cand))
    if not runs:
        return None, f"no baseline: no readable phase-{phase} run directory under {where}"
    found = max(runs)[2]
    return found, f"baseline {found} (newest phase-{phase} run of {len(runs)} under {where})"


def decide(gate_code: int, run_valid: bool, comparison: str | None) -> tuple[str, int]:
    """(outcome, exit code) from the gate's exit code and the comparison's verdict.

    ``gate_code`` is the gate verdict's code from the one table (``reports.exit_code``:
    0 PASS / NO GATE on a valid run, 1 FAIL, 3 the rest); a regression makes the
    outcome 1 only when this run is valid (not INVALID, completed)."""
    from analysis.compare import REGRESSION

    if gate_code == EXIT_FAIL:
        return "fail", EXIT_FAIL
    if comparison == REGRESSION and run_valid:
        return "regression", EXIT_FAIL
    if gate_code == EXIT_PASS:
        return "pass", EXIT_PASS
    return "neutral", EXIT_NEUTRAL


def _usable_baseline(base: Path | None, note: str) -> tuple[Path | None, str]:
    """The baseline if it can be compared with: readable and not INVALID."""
    from reports import ReportError, analyze_dir

    if base is None:
        return None, note
    try:
        verdict = analyze_dir(base).verdict
    except ReportError as exc:
        return None, f"{note}; not compared: {exc}"
    if verdict == Verdict.INVALID:
        return None, f"{note}; not compared: that run is INVALID (its numbers describe the harness)"
    return base, f"{note}, verdict {verdict}"


def judge(run_dir: Path, baseline: Path | None, baseline_note: str) -> CiResult:
    """Analyse ``run_dir``, compare with ``baseline``, write the reports; the decision.

    Raises ``reports.ReportError`` when the run cannot be analysed or written."""
    from analysis.compare import REGRESSION
    from reports import analyze_dir, compare_dirs, exit_code, write_all, write_comparison

    result = analyze_dir(run_dir)
    base, note = _usable_baseline(baseline, baseline_note)
    comparison = compare_dirs(run_dir, base) if base is not None else None
    out = run_dir / "report"
    paths = write_all(result, out, comparison)
    reports = {"html": str(paths.html), "md": str(paths.md), "json": str(paths.json)}
    reports["junit"] = str(paths.junit)
    if comparison is not None:
        cpaths = write_comparison(comparison, out)
        reports |= {"comparison_html": str(cpaths.html), "comparison_md": str(cpaths.md)}
    completed = result.manifest.get("status") == "completed"
    valid = result.verdict != Verdict.INVALID and completed
    verdict_of_compare = comparison.verdict if comparison is not None else None
    outcome, code = decide(exit_code(result), valid, verdict_of_compare)
    ci = CiResult(
        outcome=outcome,
        exit_code=code,
        run_dir=str(run_dir),
        verdict=str(result.verdict),
        regression=None if comparison is None else verdict_of_compare == REGRESSION,
        comparison=verdict_of_compare,
        baseline=str(base) if base is not None else None,
        baseline_note=note,
        baseline_candidate=valid and outcome in ("pass", "neutral"),
        reports=reports,
    )
    if verdict_of_compare == REGRESSION and not valid:
        ci.notes.append("regression against the baseline not counted: this run is not valid")
    return ci


def summary_markdown(ci: CiResult) -> str:
    """The job summary: ci's decision first, then the run's summary and the comparison."""
    regression = "not compared" if ci.regression is None else "**yes**" if ci.regression else "no"
    lines = [
        f"## loadgate ci — {ICON.get(ci.outcome, '')} {ci.outcome} (exit {ci.exit_code})",
        "",
        "| | |",
        "|---|---|",
        f"| gate verdict | **{ci.verdict or '—'}** |",
        f"| regression vs baseline | {regression}"
        + (f" ({ci.comparison})" if ci.comparison else "")
        + " |",
        f"| baseline | {ci.baseline_note or '—'} |",
        f"| run directory | `{ci.run_dir or '—'}` |",
        "",
        *[f"> {n}" for n in ci.notes],
        "",
    ]
    for key in ("md", "comparison_md"):
        path = ci.reports.get(key)
        if path and Path(path).exists():
            lines += [Path(path).read_text(), ""]
    return "\n".join(lines)


def publish(ci: CiResult, summary: Path | None) -> None:
    """Summary to ``summary`` (written) or ``$GITHUB_STEP_SUMMARY`` (appended), ci.json
    into the report directory, and step outputs to ``$GITHUB_OUTPUT`` when set."""
    text = summary_markdown(ci)
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(text)
    elif os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(text)
    if ci.run_dir and Path(ci.run_dir, "report").is_dir():
        path = Path(ci.run_dir, "report", "ci.json")
        ci.reports["ci"] = str(path)
        path.write_text(json.dumps(ci.to_dict(), indent=2))
    if os.environ.get("GITHUB_OUTPUT"):
        values = {
            "outcome": ci.outcome,
            "exit_code": ci.exit_code,
            "verdict": ci.verdict or "",
            "regression": str(bool(ci.regression)).lower(),
            "baseline_candidate": str(ci.baseline_candidate).lower(),
            "run_dir": ci.run_dir or "",
            "report_dir": str(Path(ci.run_dir, "report")) if ci.run_dir else "",
        }
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in values.items())


def _check_options(phase: int | None, run_dir: Path | None, extra: list[str]) -> None:
    """Reject what cannot work before anything starts (one error line, exit 2)."""
    if (phase is None) == (run_dir is None):
        error("pass --phase N to run a gate, or --run-dir DIR to judge an existing run (not both)")
        raise typer.Exit(HARNESS_ERROR_EXIT)
    if run_dir is not None and extra:
        error(f"{' '.join(extra)}: run options need a run; drop them or --run-dir")
        raise typer.Exit(HARNESS_ERROR_EXIT)
    own = [a for a in extra if a.split("=")[0] in OWN_RUN_OPTIONS]
    if own:
        error(f"{own[0]}: ci writes the reports itself; drop it")
        raise typer.Exit(HARNESS_ERROR_EXIT)
    if run_dir is not None and not (run_dir / "manifest.json").is_file():
        error(
            f"{run_dir}: not a run directory (no manifest.json); pass one written by 'loadgate run'"
        )
        raise typer.Exit(HARNESS_ERROR_EXIT)


def ci(
    ctx: typer.Context,
    phase: Annotated[
        int | None, typer.Option("--phase", "-p", help="Run this phase's gate (0..4).")
    ] = None,
    provider: Annotated[str, typer.Option(help="Stack provider: auto, local, containers.")] = (
        "auto"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<UTC time>-phase<N>).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Judge this existing run instead of running one.")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="A baseline run, or a directory holding runs (newest of the phase)."),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(help="Write the Markdown summary here (default: $GITHUB_STEP_SUMMARY)."),
    ] = None,
) -> None:
    """Run a phase gate, compare with a baseline, write the job summary and ci.json.

    Exit 0 pass, 1 gate FAIL or regression, 3 neutral (INCONCLUSIVE, INVALID,
    PROJECTED), 2 harness error. Any other 'loadgate run' option is passed through,
    e.g. 'loadgate ci --phase 1 --provider containers --duration 5m --workers 2'.
    """
    from reports import ReportError
    from runformat.rundir import default_run_dir

    extra = list(ctx.args)
    _check_options(phase, run_dir, extra)
    if run_dir is None:
        run_dir = out or default_run_dir(phase)
        args = ["--phase", str(phase), "--provider", provider, "--out", str(run_dir)]
        stopped = _not_judgeable(run_dir, run_gate([*args, "--no-report", *extra]))
    else:
        stopped = _not_judgeable(run_dir, EXIT_PASS)
    try:
        if stopped is not None:
            publish(stopped, summary)
            raise typer.Exit(stopped.exit_code)
        where, note = find_baseline(baseline, run_dir, read_manifest(run_dir).phase)
        result = judge(run_dir, where, note)
        publish(result, summary)
    except (ReportError, RunFormatError) as exc:
        error(str(exc))
        raise typer.Exit(HARNESS_ERROR_EXIT) from None
    except OSError as exc:
        error(f"cannot write the summary: {exc.strerror or exc}; pass --summary a writable FILE")
        raise typer.Exit(HARNESS_ERROR_EXIT) from None
    _print(result)
    raise typer.Exit(result.exit_code)


def _not_judgeable(run_dir: Path, run_code: int) -> CiResult | None:
    """A result without analysis when the run step gives nothing to judge: it failed
    (harness error, interrupted) or recorded no request (as ``loadgate run``: exit 3)."""
    manifest = run_dir / "manifest.json"
    if run_code not in (EXIT_PASS, EXIT_NEUTRAL) or not manifest.is_file():
        code = run_code if run_code not in (EXIT_PASS, EXIT_NEUTRAL) else HARNESS_ERROR_EXIT
        outcome = "stopped" if code == EXIT_INTERRUPTED else "error"
        result = CiResult(outcome, code, str(run_dir) if run_dir.is_dir() else None)
        result.notes.append(f"'loadgate run' exited {run_code}: no verdict (see the log)")
        return result
    try:
        requests = json.loads(manifest.read_text()).get("requests")
    except (OSError, ValueError, AttributeError):
        return None  # the analysis step names what is wrong with the manifest
    if requests == 0:
        result = CiResult("neutral", EXIT_NEUTRAL, str(run_dir))
        result.notes.append("no requests were recorded: nothing to decide")
        return result
    return None


def _print(ci: CiResult) -> None:
    console.print(f"baseline: {ci.baseline_note}", soft_wrap=True)
    for note in ci.notes:
        console.print(note, soft_wrap=True)
    console.print(
        f"ci: [bold]{ci.outcome}[/bold]  verdict {ci.verdict}  regression "
        f"{'not compared' if ci.regression is None else 'yes' if ci.regression else 'no'}  "
        f"exit {ci.exit_code}  ({ci.reports.get('ci', ci.run_dir)})",
        soft_wrap=True,
    )
