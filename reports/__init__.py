"""Reports of an analysed run: HTML (leadership), Markdown + JUnit XML + JSON (CI).

    paths = reports.write_all(result, out_dir)         # ReportPaths(html, md, json, junit)
    code = reports.exit_code(result, comparison=None)  # 0 pass, 1 fail/regression, 3 undecided
    reports.write_comparison(comparison, out_dir)
    code, paths = reports.report_run(run_dir, out_dir, baseline_dir=None)  # all of the above

Exit code 2 (usage or harness error) belongs to the CLI: it is what to return when
``analysis.load_run`` raises ``RunFormatError`` or anything else goes wrong before a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison
from reports import html, json_report, junit, markdown
from runformat.verdicts import Verdict

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNDECIDED = 0, 1, 2, 3


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
    out.mkdir(parents=True, exist_ok=True)
    return ReportPaths(
        html=html.write(result, out / "report.html"),
        md=markdown.write(result, out / "summary.md"),
        json=json_report.write(result, out / "report.json"),
        junit=junit.write(result, out / "junit.xml", comparison),
    )


def write_comparison(comparison: Comparison, out_dir: str | Path) -> ComparisonPaths:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h = out / "comparison.html"
    h.write_text(html.render_comparison(comparison), encoding="utf-8")
    m = out / "comparison.md"
    m.write_text(markdown.render_comparison(comparison))
    j = out / "comparison.json"
    j.write_text(json.dumps(json_report.comparison_dict(comparison), indent=2, allow_nan=False))
    return ComparisonPaths(h, m, j)


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
    return Verdict(result.verdict).exit_code  # the one table: runformat.verdicts


def report_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    baseline_dir: str | Path | None = None,
) -> tuple[int, ReportPaths | None]:
    """What ``loadgate report RUN [--baseline DIR]`` does: analyse, compare, write, decide.

    Reports go to ``out_dir`` (default ``RUN/report``).  Returns (exit code, paths); exit
    code 2 with no paths when a directory is not a readable run.
    """
    import analysis
    from analysis.compare import compare_runs

    try:
        run = analysis.load_run(run_dir)
        base = analysis.load_run(baseline_dir) if baseline_dir is not None else None
    except analysis.RunFormatError:
        return EXIT_USAGE, None
    result = analysis.analyze(run)
    comparison = compare_runs(run, base) if base is not None else None
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    paths = write_all(result, out, comparison)
    if comparison is not None:
        write_comparison(comparison, out)
    return exit_code(result, comparison), paths
