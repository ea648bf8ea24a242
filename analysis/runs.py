"""Loading a run directory (format: docs/run-directory.md).

Events are kept as numpy arrays plus dictionary-encoded string columns rather than a
pandas DataFrame: a gate run holds up to tens of millions of request records, and the
analysis only ever needs integer columns and small category codes.  Reading with
``read_dictionary`` keeps strings as codes so no Python string is built per record.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runformat.gate import GateSpec, ValiditySpec
from runformat.manifest import Manifest, RunFormatError, read_manifest
from runformat.schemas import ERROR_CLASSES, EVENT_COLUMNS

log = logging.getLogger(__name__)

#: String columns read as dictionaries (codes + small category list).
DICT_COLUMNS = ("persona", "name", "method", "error_class", "outcome", "worker")
#: Columns analysis needs; ``bytes`` and ``worker``/``persona`` are read on demand only.
NEEDED_COLUMNS = (
    "ts_us",
    "name",
    "method",
    "status",
    "latency_us",
    "intended_latency_us",
    "error_class",
    "outcome",
    "users",
)
#: Columns a run directory may lack (older formats), and the value they then take.
OPTIONAL_COLUMNS = {"outcome": ""}
__all__ = ["ERROR_CLASSES", "EVENT_COLUMNS", "Events", "Run", "RunFormatError", "load_run"]


@dataclass
class Categorical:
    """A dictionary-encoded string column: ``categories[codes[i]]`` is row i's value."""

    codes: np.ndarray
    categories: list[str]

    def code_of(self, value: str) -> int:
        """Code of ``value`` or -1 when it never occurs."""
        try:
            return self.categories.index(value)
        except ValueError:
            return -1


@dataclass
class Events:
    """Raw request records, one array per column, in file order (not sorted)."""

    ts_us: np.ndarray
    latency_us: np.ndarray
    intended_latency_us: np.ndarray
    status: np.ndarray
    users: np.ndarray
    endpoint: Categorical  # "METHOD name"
    error_class: Categorical
    outcome: Categorical  # business outcome code, "" when none (runformat.schemas)

    def __len__(self) -> int:
        return int(self.ts_us.shape[0])


@dataclass
class Stage:
    """One stage of the load shape from the manifest."""

    name: str
    start_s: float
    end_s: float
    users: int
    kind: str  # "ramp" | "hold"
    rate: float | None = None
    warmup_s: float | None = None  # per-stage warm-up; overrides config.warmup_s


@dataclass(frozen=True)
class LostFile:
    """An ``events/*.parquet`` file that did not parse, and the time its records would
    have covered: from the last record of the previous file of the same writer (the
    name's ``<prefix>-<seq>``) to the first of the next one.  ``None`` ends are unknown
    (no such neighbour): the file may hold records from the load start, or to its end."""

    name: str
    from_us: int | None
    to_us: int | None

    def span(self, start_us: int, end_us: int) -> tuple[int, int] | None:
        """The part of [start_us, end_us) this file may cover; None when it cannot."""
        a = start_us if self.from_us is None else max(start_us, self.from_us)
        b = end_us if self.to_us is None else min(end_us, self.to_us)
        return (a, b) if b > a else None


@dataclass
class Run:
    """Everything analysis needs from one run directory."""

    path: Path
    meta: Manifest
    events: Events
    samples: pd.DataFrame
    arrivals: pd.DataFrame | None
    faults: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    #: events files that did not parse (a killed writer), with the time they cover
    lost_events: list[LostFile] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.meta.to_dict()

    @property
    def run_id(self) -> str:
        return self.meta.run_id or self.path.name

    @property
    def phase(self) -> int | None:
        return self.meta.phase

    @property
    def model(self) -> str:
        return self.meta.model

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.config

    @property
    def gate_spec(self) -> GateSpec:
        return self.meta.gate

    @property
    def gate(self) -> dict[str, Any]:
        """The gate in its one recorded shape (``runformat.gate.GateSpec``), as a dict."""
        return self.meta.gate.to_dict()

    @property
    def validity(self) -> ValiditySpec:
        return self.meta.validity

    @property
    def start_us(self) -> int:
        """Origin of the stage offsets (µs since epoch): ``load_started_at`` when the run
        records when the load shape's t = 0 was (after stack start-up and fixtures),
        else ``started_at``."""
        return self.meta.start_us

    @property
    def load_end_us(self) -> int:
        """End of the load plan's last stage (the drain of in-flight requests follows)."""
        stages = self.stages
        return self.start_us + int((stages[-1].end_s if stages else 0.0) * 1e6)

    @property
    def stages(self) -> list[Stage]:
        return [
            Stage(
                name=str(s.get("name", f"stage{i}")),
                start_s=float(s["start_s"]),
                end_s=float(s["end_s"]),
                users=int(s.get("users", 0)),
                kind=str(s.get("kind", "hold")),
                rate=None if s.get("rate") is None else float(s["rate"]),
                warmup_s=None if s.get("warmup_s") is None else float(s["warmup_s"]),
            )
            for i, s in enumerate(self.config.get("stages", []))
        ]

    @property
    def think_time_s(self) -> tuple[float, float]:
        tt = self.config.get("think_time_s", [0.0, 0.0])
        return float(tt[0]), float(tt[1])


def parquet_files(directory: Path) -> list[Path]:
    """The Parquet files of a run-directory folder (events/, samples/...), in name order."""
    return sorted(directory.glob("*.parquet")) if directory.is_dir() else []


def read_tables(
    files: list[Path],
    columns: list[str] | None,
    run_warnings: list[str],
    read_dictionary: list[str] | None = None,
    lost: list[Path] | None = None,
    quiet: bool = False,
) -> list[pa.Table]:
    """Read every file; a file that does not parse (a killed writer) is skipped with a
    warning (and appended to ``lost``).  A file that parses but lacks a needed column is
    a format error naming the column: the files are readable, the format is not met.

    ``quiet``: a second read of a run that ``load_run`` already read and warned about
    (``analysis.demands``'s extra columns): a file that does not parse or lacks a column
    is skipped without a word."""
    tables = []
    for f in files:
        present = columns if columns is None or quiet else _require_columns(f, columns)
        try:
            table = pq.read_table(f, columns=present, read_dictionary=read_dictionary)
            for name in [] if columns is None else [c for c in columns if c not in present]:
                fill = pa.array([OPTIONAL_COLUMNS[name]] * table.num_rows, pa.string())
                table = table.append_column(name, fill.dictionary_encode())
            tables.append(table)
        except (pa.ArrowInvalid, OSError) as exc:
            if quiet:
                continue
            msg = f"skipped unreadable file {f.name} (truncated by a killed run?): {exc}"
            warnings.warn(msg, stacklevel=3)
            log.warning(msg)
            run_warnings.append(msg)
            if lost is not None:
                lost.append(f)
    return tables


def _require_columns(f: Path, columns: list[str]) -> list[str]:
    """The ``columns`` the file has; RunFormatError naming a missing required one.

    Optional columns (``OPTIONAL_COLUMNS``: ``outcome``, newer than the first run
    directories) are filled with their default by the caller."""
    try:
        names = set(pq.read_schema(f).names)
    except (pa.ArrowInvalid, OSError):
        return columns  # unreadable: read_tables skips it with a warning
    missing = [c for c in columns if c not in names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise RunFormatError(
            f"{f}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(docs/run-directory.md, events/*.parquet: every listed column is required; "
            "write them, or rewrite the files with them)"
        )
    return [c for c in columns if c in names]


def _lost_spans(
    files: list[Path], tables: dict[Path, pa.Table], lost: list[Path]
) -> list[LostFile]:
    """Time each lost file would have covered, from its writer's neighbouring files."""
    import pyarrow.compute as pc

    def prefix(f: Path) -> str:
        return f.stem.rsplit("-", 1)[0]

    out = []
    for f in lost:
        same = [g for g in files if prefix(g) == prefix(f)]
        i = same.index(f)
        before = [tables[g] for g in same[:i] if g in tables and tables[g].num_rows]
        after = [tables[g] for g in same[i + 1 :] if g in tables and tables[g].num_rows]
        lo = pc.max(before[-1].column("ts_us")).as_py() if before else None
        hi = pc.min(after[0].column("ts_us")).as_py() if after else None
        out.append(LostFile(f.name, lo, hi))
    return out


def _dictionary_column(table: pa.Table, name: str) -> Categorical:
    """Codes + categories of a dictionary column whose chunks share one dictionary.

    Call on a table after ``unify_dictionaries()``; string columns that were not read as
    dictionaries are encoded here.
    """
    col = table.column(name)
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
        col = pa.chunked_array(col.chunks) if isinstance(col, pa.ChunkedArray) else col
    if col.num_chunks == 0:
        return Categorical(np.zeros(0, dtype=np.int32), [])
    categories = ["" if v is None else str(v) for v in col.chunks[0].dictionary.to_pylist()]
    codes = np.concatenate(
        [c.indices.fill_null(0).to_numpy(zero_copy_only=False) for c in col.chunks]
    ).astype(np.int32, copy=False)
    # Null and "" must share a code (both mean "no error" for error_class).
    if "" in categories and categories.count("") > 1:
        first = categories.index("")
        remap = np.array([first if c == "" else k for k, c in enumerate(categories)], np.int32)
        codes = remap[codes]
    return Categorical(codes=codes, categories=categories)


def _column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    """A numeric column as one numpy array (per-chunk conversion, one concatenation)."""
    chunks = table.column(name).chunks
    if not chunks:
        return np.zeros(0, dtype=dtype)
    parts = [(c.fill_null(0) if c.null_count else c).to_numpy() for c in chunks]
    return np.concatenate(parts).astype(dtype, copy=False)


def _read_events(path: Path, run_warnings: list[str], lost_files: list[LostFile]) -> Events:
    files = parquet_files(path / "events")
    lost: list[Path] = []
    tables = read_tables(
        files,
        list(NEEDED_COLUMNS),
        run_warnings,
        read_dictionary=["name", "method", "error_class", "outcome"],
        lost=lost,
    )
    if not tables:
        raise RunFormatError(f"{path}: no readable events/*.parquet")
    readable = [f for f in files if f not in lost]
    lost_files += _lost_spans(files, dict(zip(readable, tables, strict=True)), lost)
    table = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
    endpoint = _combine(_dictionary_column(table, "method"), _dictionary_column(table, "name"))
    return Events(
        ts_us=_column(table, "ts_us", np.int64),
        latency_us=_column(table, "latency_us", np.int64),
        intended_latency_us=_column(table, "intended_latency_us", np.int64),
        status=_column(table, "status", np.int16),
        users=_column(table, "users", np.int32),
        endpoint=endpoint,
        error_class=_dictionary_column(table, "error_class"),
        outcome=_dictionary_column(table, "outcome"),
    )


def _combine(methods: Categorical, names: Categorical) -> Categorical:
    """Endpoint key "METHOD name" from two small code spaces without per-row strings."""
    width = max(len(names.categories), 1)
    pair = methods.codes.astype(np.int64) * width + names.codes
    # O(n) lookup table instead of np.unique (a sort of every record).
    present = np.bincount(pair, minlength=1)
    uniq = np.flatnonzero(present)
    lut = np.zeros(present.size, dtype=np.int32)
    lut[uniq] = np.arange(uniq.size, dtype=np.int32)
    codes = lut[pair]
    categories = [
        f"{methods.categories[int(p) // width]} {names.categories[int(p) % width]}".strip()
        for p in uniq
    ]
    return Categorical(codes=codes.astype(np.int32), categories=categories)


def _read_samples(path: Path, run_warnings: list[str]) -> pd.DataFrame:
    tables = read_tables(parquet_files(path / "samples"), None, run_warnings)
    if not tables:
        return pd.DataFrame(
            {
                "ts_us": pd.Series(dtype="int64"),
                "source": pd.Series(dtype=str),
                "metric": pd.Series(dtype=str),
                "value": pd.Series(dtype=float),
                "labels": pd.Series(dtype=str),
            }
        )
    df = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    if "labels" not in df:
        df["labels"] = ""
    # Few distinct values, many rows: categories make the per-step filters cheap.
    for col in ("source", "metric", "labels"):
        df[col] = df[col].fillna("").astype(str).astype("category")
    return df


def _read_arrivals(path: Path, run_warnings: list[str]) -> pd.DataFrame | None:
    tables = read_tables(parquet_files(path / "arrivals"), None, run_warnings)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def _read_faults(path: Path, run_warnings: list[str]) -> list[dict[str, Any]]:
    """Fault windows; a fault written again as it changes (same ``id``) is its last line."""
    f = path / "faults.jsonl"
    if not f.exists():
        return []
    faults: dict[Any, dict[str, Any]] = {}
    for lineno, line in enumerate(f.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            run_warnings.append(f"faults.jsonl line {lineno} is not JSON; skipped")
            continue
        faults[record.get("id", f"line{lineno}") if isinstance(record, dict) else lineno] = record
    return list(faults.values())


def _require_config(path: Path, meta: Manifest) -> None:
    """A manifest without its ``config`` (or its load shape) cannot be analysed: its gate
    is unknown, and reading it as "no gate" would make NO GATE, exit 0, of any run."""
    if not meta.config:
        raise RunFormatError(
            f"{path}: manifest.json has no config (the phase's resolved config: stages, "
            "gate, validity; docs/run-directory.md): write it, or rerun with loadgate run"
        )
    if not meta.config.get("stages"):
        raise RunFormatError(
            f"{path}: manifest.json config has no stages (the load shape): write "
            "config.stages as docs/run-directory.md lists them"
        )
    if (meta.phase or 0) >= 1 and "gate" not in meta.config:
        raise RunFormatError(
            f"{path}: manifest.json config has no gate, but phase {meta.phase} has one: "
            "write config.gate ({users, criteria, ...}; docs/run-directory.md)"
        )


def load_run(path: str | Path) -> Run:
    """Load a run directory; raises RunFormatError when it is not one."""
    path = Path(path)
    meta = read_manifest(path)
    _require_config(path, meta)
    run_warnings: list[str] = []
    lost: list[LostFile] = []
    return Run(
        path=path,
        meta=meta,
        events=_read_events(path, run_warnings, lost),
        samples=_read_samples(path, run_warnings),
        arrivals=_read_arrivals(path, run_warnings),
        faults=_read_faults(path, run_warnings),
        warnings=run_warnings,
        lost_events=lost,
    )
