"""Columnar records flushed as the run goes: the run directory's raw data.

Every record stream of a run (request events, resource samples, open-model
arrivals) is written the same way: rows are buffered in columns and, every
``flush_s`` seconds, written as one small *complete* Parquet file under a
temp name and renamed into place. A process killed with SIGKILL therefore
loses at most the last interval and never leaves a file analysis cannot
read. Readers glob ``<stream>/*.parquet``. The schemas live in
:mod:`runformat.schemas` (the one definition readers and writers share).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from runformat.schemas import ARRIVAL_SCHEMA, EVENT_SCHEMA, SAMPLE_SCHEMA

__all__ = ["ARRIVAL_SCHEMA", "EVENT_SCHEMA", "SAMPLE_SCHEMA", "ParquetBatches", "now_us"]


def now_us() -> int:
    return time.time_ns() // 1000


class ParquetBatches:
    """Append rows; every flush writes ``<dir>/<prefix>-<seq>.parquet`` atomically."""

    def __init__(self, directory: Path, prefix: str, schema: pa.Schema, flush_s: float = 2.0):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.flush_s = flush_s
        self._columns: list[list[Any]] = [[] for _ in schema]
        self._lock = threading.Lock()
        self._seq = 0
        self.rows_written = 0
        self._stop = threading.Event()
        self._task: Any = None

    def append(self, row: Sequence[Any]) -> None:
        with self._lock:
            for column, value in zip(self._columns, row, strict=True):
                column.append(value)

    def flush(self) -> int:
        """Write what is buffered as one complete file; returns the row count."""
        with self._lock:
            if not self._columns[0]:
                return 0
            columns, self._columns = self._columns, [[] for _ in self.schema]
            self._seq += 1
            seq = self._seq
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, self.schema, strict=True)],
            schema=self.schema,
        )
        final = self.dir / f"{self.prefix}-{seq:06d}.parquet"
        partial = self.dir / f".{final.name}.partial"
        pq.write_table(table, partial, compression="zstd")
        partial.replace(final)
        self.rows_written += table.num_rows
        return table.num_rows

    def start(self, spawn: Callable[[Callable[[], None]], Any] | None = None) -> None:
        """Flush every ``flush_s`` in the background (a thread, or ``spawn``'s task)."""

        def loop() -> None:
            while not self._stop.wait(self.flush_s):
                self.flush()

        if spawn is not None:
            self._task = spawn(loop)
        else:
            self._task = threading.Thread(target=loop, name=f"flush-{self.prefix}", daemon=True)
            self._task.start()

    def close(self) -> None:
        self._stop.set()
        self.flush()
