"""Reports of an analysed run: HTML (leadership), Markdown + JUnit XML + JSON (CI).

    paths = reports.write_all(result, out_dir)         # ReportPaths(html, md, json, junit)
    code = reports.exit_code(result, comparison=None)  # 0 pass, 1 fail/regression, 3 undecided
    reports.write_comparison(comparison, out_dir)
    code, paths = reports.report_run(run_dir, out_dir, baseline_dir=None)  # all of the above
    comparison = reports.compare_dirs(run_dir, baseline_dir)

Exit code 2 (usage or harness error) belongs to the CLI: ``report_run`` and
``compare_dirs`` raise ``ReportError`` with a one-line message (malformed run directory,
unwritable output, a failure of the report step itself) and the CLI prints it and exits 2.
``verdict_exit_code`` is the one verdict -> exit code table (README "Reading a verdict").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison
from reports import html, json_report, junit, markdown
from reports.inputs import ReportError, check_event_schemas, check_manifest
from runformat.verdicts import Verdict

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNDECIDED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
__all__ = ["ReportError", "exit_code", "report_run", "verdict_exit_code", "write_all"]


def verdict_exit_code(verdict: str) -> int:
    """Exit code of a gate verdict (the one table: ``runformat.verdicts``); an unknown
    verdict decides nothing (3), never 0."""
    try:
        return Verdict(verdict).exit_code
    except ValueError:
        return EXIT_UNDECIDED


@dataclass
class ReportPaths:
    html: Path
    md: Path
    json: Path
    junit: Path


@dataclass
class ComparisonPaths:
    html: Path
    md: Path
    json: Path


def write_all(
    result: AnalysisResult, out_dir: str | Path, comparison: Comparison | None = None
) -> ReportPaths:
    """Write report.html, summary.md, report.json and junit.xml into ``out_dir``."""
    out = Path(out_dir)
    with _writable(out):
        out.mkdir(parents=True, exist_ok=True)
        return ReportPaths(
            html=html.write(result, out / "report.html"),
            md=markdown.write(result, out / "summary.md"),
            json=json_report.write(result, out / "report.json"),
            junit=junit.write(result, out / "junit.xml", comparison),
        )


@contextmanager
def _writable(out: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ReportError(
            f"cannot write reports to {out}: {exc.strerror or exc}; pass --out a writable directory"
        ) from None


def write_comparison(comparison: Comparison, out_dir: str | Path) -> ComparisonPaths:
    out = Path(out_dir)
    with _writable(out):
        out.mkdir(parents=True, exist_ok=True)
        h = out / "comparison.html"
        h.write_text(html.render_comparison(comparison), encoding="utf-8")
        m = out / "comparison.md"
        m.write_text(markdown.render_comparison(comparison))
        j = out / "comparison.json"
        j.write_text(json.dumps(json_report.comparison_dict(comparison), indent=2, allow_nan=False))
        return ComparisonPaths(h, m, j)


def run_is_valid(result: AnalysisResult) -> bool:
    """The run completed and no validity check failed (what "NO GATE" needs for exit 0)."""
    completed = result.manifest.get("status") == "completed"
    return completed and not any(c.decides and c.ok is False for c in result.checks)


def exit_code(result: AnalysisResult | None, comparison: Comparison | None = None) -> int:
    """0 PASS or NO GATE (and no regression); 1 a measured gate failure or a regression;
    3 INCONCLUSIVE, INVALID or PROJECTED (``runformat.verdicts.EXIT_CODES``)."""
    if comparison is not None and comparison.verdict == "regression":
        return EXIT_FAIL
    if result is None:
        return (
            EXIT_PASS
            if comparison is not None and comparison.verdict != "insufficient data"
            else EXIT_UNDECIDED
        )
    code = verdict_exit_code(result.verdict)
    if result.verdict == "NO GATE" and not run_is_valid(result):
        return EXIT_UNDECIDED
    return code


def load_checked(run_dir: str | Path):
    """``analysis.load_run`` with every input problem turned into a ReportError."""
    import pyarrow as pa

    import analysis

    run_dir = Path(run_dir)
    check_event_schemas(run_dir)
    _check_raw_manifest(run_dir)  # first: its message names the key, the loader's does not
    try:
        run = analysis.load_run(run_dir)
    except analysis.RunFormatError as exc:
        raise ReportError(
            f"{exc}: pass a directory written by 'loadgate run' (docs/run-directory.md)"
        ) from None
    except (pa.ArrowException, ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        raise ReportError(
            f"{run_dir}: unreadable run data ({type(exc).__name__}: {exc}); event and sample "
            "files must have the columns and types of docs/run-directory.md"
        ) from None
    check_manifest(run_dir, run.manifest)
    return run


def _check_raw_manifest(run_dir: Path) -> None:
    """The manifest as written, checked before the typed loader sees it (a missing or
    unparsable file is left to the loader, whose error says so)."""
    try:
        raw = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    check_manifest(run_dir, raw)


def _guarded(what: str, run_dir: Path, fn, *args):
    """Run an analysis step; an exception becomes a one-line ReportError (never a traceback)."""
    try:
        return fn(*args)
    except ReportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the report step must end in one error line
        raise ReportError(
            f"{what} of {run_dir} failed ({type(exc).__name__}: {exc}); the run directory does "
            "not follow docs/run-directory.md, or this is a loadgate bug worth reporting"
        ) from None


def analyze_dir(run_dir: str | Path) -> AnalysisResult:
    import analysis

    run = load_checked(run_dir)
    return _guarded("analysis", Path(run_dir), analysis.analyze, run)


def compare_dirs(run_dir: str | Path, baseline_dir: str | Path) -> Comparison:
    from analysis.compare import compare_runs

    run, base = load_checked(run_dir), load_checked(baseline_dir)
    return _guarded("comparison", Path(run_dir), compare_runs, run, base)


def report_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    baseline_dir: str | Path | None = None,
) -> tuple[int, ReportPaths]:
    """What ``loadgate report RUN [--baseline DIR]`` does: analyse, compare, write, decide.

    Reports go to ``out_dir`` (default ``RUN/report``).  Returns (exit code, paths);
    raises ReportError (exit code 2) when a directory is not a reportable run or the
    reports cannot be written.
    """
    result = analyze_dir(run_dir)
    comparison = compare_dirs(run_dir, baseline_dir) if baseline_dir is not None else None
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    paths = _guarded("writing the reports", Path(run_dir), write_all, result, out, comparison)
    if comparison is not None:
        write_comparison(comparison, out)
    return exit_code(result, comparison), paths
