"""What can be wrong with a run directory before it is reported, said in one line.

``loadgate report`` / ``compare`` must never show a traceback (issue 9): a manifest with
wrong types, missing keys or bad dates, event files with wrong column types, or an
unwritable output directory are the user's to fix, so each becomes a ``ReportError``
whose message names the problem and the fix; the CLI prints it as one ``error:`` line and
exits 2.  The checks here cover what analysis reads from the manifest (docs/run-directory.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd


class ReportError(Exception):
    """A run directory that cannot be reported, or reports that cannot be written (exit 2)."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is {type(value).__name__}, not an ISO 8601 date string"
    try:
        pd.Timestamp(value)
    except (ValueError, TypeError):
        return f"{value!r} is not an ISO 8601 date"
    return None


def manifest_problems(manifest: Any) -> list[str]:
    """Every problem with the fields analysis reads, as 'field: what is wrong'."""
    if not isinstance(manifest, dict):
        return [f"manifest.json holds a {type(manifest).__name__}, not an object"]
    out = []
    for key in ("started_at", "load_started_at"):
        if key in manifest and manifest[key] is not None:
            problem = _date_problem(manifest[key])
            if problem:
                out.append(f"{key} {problem}")
        elif key == "started_at":
            out.append("started_at is missing")
    phase = manifest.get("phase")
    if phase is not None and not (isinstance(phase, int) and not isinstance(phase, bool)):
        out.append(f"phase is {phase!r}, not an integer")
    config = manifest.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return [*out, f"config is {type(config).__name__}, not an object"]
    for key in ("gate",):
        if config.get(key) is not None and not isinstance(config[key], dict):
            out.append(f"config.{key} is {type(config[key]).__name__}, not an object")
    think = config.get("think_time_s", [0.0, 0.0])
    if not (isinstance(think, list) and len(think) == 2 and all(_number(t) for t in think)):
        out.append(f"config.think_time_s is {think!r}, not [min, max] seconds")
    stages = config.get("stages", [])
    if not isinstance(stages, list):
        return [*out, f"config.stages is {type(stages).__name__}, not a list"]
    for i, stage in enumerate(stages):
        where = f"config.stages[{i}]"
        if not isinstance(stage, dict):
            out.append(f"{where} is {type(stage).__name__}, not an object")
            continue
        for key in ("start_s", "end_s"):
            if not _number(stage.get(key)):
                out.append(f"{where}.{key} is {stage.get(key)!r}, not a number of seconds")
        for key in ("users", "rate", "warmup_s"):
            if stage.get(key) is not None and not _number(stage[key]):
                out.append(f"{where}.{key} is {stage[key]!r}, not a number")
    return out


def check_manifest(run_dir: Any, manifest: Any) -> None:
    """Raise ReportError naming the first problems (at most three) of a manifest."""
    problems = manifest_problems(manifest)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ReportError(
            f"{run_dir}/manifest.json: {'; '.join(problems[:3])}{more}; fix the manifest "
            "(format: docs/run-directory.md) or pass a directory written by 'loadgate run'"
        )


#: Event columns analysis reads, and the Arrow type family each must have.
INTEGER_COLUMNS = ("ts_us", "status", "latency_us", "intended_latency_us", "users")
STRING_COLUMNS = ("name", "method", "error_class")


def check_event_schemas(run_dir: Path) -> None:
    """Raise ReportError naming the first event file whose column has the wrong type.

    Reads only the Parquet footers; files that do not parse at all are left to the loader
    (it skips a file truncated by a killed run, with a warning).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in sorted((Path(run_dir) / "events").glob("*.parquet")):
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError):
            continue
        for name in INTEGER_COLUMNS + STRING_COLUMNS:
            if name not in schema.names:
                continue
            kind = schema.field(name).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            ok = (
                pa.types.is_integer(kind)
                if name in INTEGER_COLUMNS
                else pa.types.is_string(kind) or pa.types.is_large_string(kind)
            )
            if not ok:
                want = "an integer" if name in INTEGER_COLUMNS else "a string"
                raise ReportError(
                    f"{path}: column {name} is {kind}, not {want} column; event files must "
                    "have the columns and types of docs/run-directory.md"
                )
