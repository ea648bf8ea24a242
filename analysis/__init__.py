"""Analysis of a loadgate run directory (format: docs/run-directory.md).

run = analysis.load_run("runs/2026-11-27T05-00-00Z")
result = analysis.analyze(run)
comparison = analysis.compare.compare_runs(run, analysis.load_run(baseline_dir))
fit = analysis.usl.fit(concurrency, throughput)
"""

from analysis import compare, usl
from analysis.analyze import AnalysisResult, analyze
from analysis.runs import Run, RunFormatError, load_run

__all__ = ["AnalysisResult", "Run", "RunFormatError", "analyze", "compare", "load_run", "usl"]
