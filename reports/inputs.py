"""What can be wrong with a run directory before it is reported, said in one line.

``loadgate report`` / ``compare`` must never show a traceback (issue 9): a manifest with
wrong types, missing keys or bad dates, event files with wrong column types, or an
unwritable output directory are the user's to fix, so each becomes a ``ReportError``
whose message names the problem and the fix; the CLI prints it as one ``error:`` line and
exits 2.  What is checked is the run format's (runformat.manifest.manifest_problems,
runformat.schemas.event_column_problem); this module only turns it into a ReportError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runformat.manifest import manifest_problems
from runformat.schemas import event_column_problem


class ReportError(Exception):
    """A run directory that cannot be reported, or reports that cannot be written (exit 2)."""


def check_manifest(run_dir: Any, manifest: Any) -> None:
    """Raise ReportError naming the first problems (at most three) of a manifest."""
    problems = manifest_problems(manifest)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ReportError(
            f"{run_dir}/manifest.json: {'; '.join(problems[:3])}{more}; fix the manifest "
            "(format: docs/run-directory.md) or pass a directory written by 'loadgate run'"
        )


def check_event_schemas(run_dir: Path) -> None:
    """Raise ReportError naming the first event file whose column has the wrong type.

    Reads only the Parquet footers; files that do not parse at all are left to the loader
    (it skips a file truncated by a killed run, with a warning). What is checked is the
    run format's (:func:`runformat.schemas.event_column_problem`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in sorted((Path(run_dir) / "events").glob("*.parquet")):
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError):
            continue
        problem = event_column_problem(schema)
        if problem:
            raise ReportError(
                f"{path}: {problem}; event files must "
                "have the columns and types of docs/run-directory.md"
            )
