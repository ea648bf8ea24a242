"""Columnar records flushed as the run goes: the run directory's raw data.

Every record stream of a run (request events, resource samples, open-model
arrivals) is written the same way: rows are buffered in columns and, every
``flush_s`` seconds, written as one small *complete* Parquet file under a
temp name and renamed into place. A process killed with SIGKILL therefore
loses at most the last interval and never leaves a file analysis cannot
read. Readers glob ``<stream>/*.parquet``. The schemas live in
:mod:`runformat.schemas` (the one definition readers and writers share).

A Locust worker on another machine has no run directory to write into: there a
process-wide *sink* (:func:`set_sink`, installed by ``scenarios.record_channel``)
receives each flushed batch as an Arrow table instead of a file, and ships it to
the master, which writes it under the same name. Whatever columns the table
has travel with it: the sink never needs the schema.
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

__all__ = [
    "ARRIVAL_SCHEMA",
    "EVENT_SCHEMA",
    "SAMPLE_SCHEMA",
    "BatchSink",
    "ParquetBatches",
    "now_us",
    "set_sink",
    "write_batch",
]

BatchSink = Callable[[str, str, pa.Table], None]
"""``sink(stream, name, table)``: ``stream`` is the run directory's sub-directory
(``events``, ``samples``, ``arrivals``), ``name`` the file name without suffix."""
_sink: dict[str, BatchSink | None] = {"sink": None}


def set_sink(sink: BatchSink | None) -> None:
    """Send every batch of this process to ``sink`` instead of a local file (or back)."""
    _sink["sink"] = sink


def now_us() -> int:
    return time.time_ns() // 1000


def write_batch(directory: Path, name: str, table: pa.Table) -> Path:
    """Write ``table`` as ``<directory>/<name>.parquet`` atomically (temp name, rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}.parquet"
    partial = directory / f".{final.name}.partial"
    pq.write_table(table, partial, compression="zstd")
    partial.replace(final)
    return final


def _call(fn: Callable[[], Any]) -> Any:
    return fn()


class ParquetBatches:
    """Append rows; every flush writes ``<dir>/<prefix>-<seq>.parquet`` atomically."""

    def __init__(self, directory: Path, prefix: str, schema: pa.Schema, flush_s: float = 2.0):
        self.dir = Path(directory)
        if _sink["sink"] is None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.flush_s = flush_s
        self._columns: list[list[Any]] = [[] for _ in schema]
        self._lock = threading.Lock()
        self._seq = 0
        self.rows_written = 0
        self.rows_appended = 0
        self._stop = threading.Event()
        self._task: Any = None
        self._offload: Callable[[Callable[[], Any]], Any] = _call

    def append(self, row: Sequence[Any]) -> None:
        with self._lock:
            for column, value in zip(self._columns, row, strict=True):
                column.append(value)
            self.rows_appended += 1

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
        name, sink = f"{self.prefix}-{seq:06d}", _sink["sink"]
        if sink is not None:
            sink(self.dir.name, name, table)
        else:
            self._offload(lambda: write_batch(self.dir, name, table))
        self.rows_written += table.num_rows
        return table.num_rows

    def start(
        self,
        spawn: Callable[[Callable[[], None]], Any] | None = None,
        offload: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        """Flush every ``flush_s`` in the background (a thread, or ``spawn``'s task).

        ``offload`` runs the file write elsewhere and waits for it: in a Locust worker,
        gevent's native thread pool, so compressing and writing a batch (pyarrow releases
        the GIL) never stalls the event loop that times the requests. A disk busy with
        another tenant's writes would otherwise show as generator lag.
        """
        if offload is not None:
            self._offload = offload

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
