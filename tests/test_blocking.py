"""Batch writes leave the worker's event loop running (scenarios/blocking.py)."""

from __future__ import annotations

import time

import gevent
import pyarrow as pa
import pyarrow.parquet as pq

from runformat.records import ParquetBatches
from scenarios.blocking import in_native_thread


def _ticks_while(call) -> int:
    """How often another greenlet ran while ``call`` blocked on a real OS sleep."""
    ticks = 0

    def ticker() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(0.005)
            ticks += 1

    g = gevent.spawn(ticker)
    gevent.sleep(0)  # let it start
    before = ticks
    call(lambda: time.sleep(0.2))  # time.sleep is not patched here: it blocks its thread
    during = ticks - before
    g.kill()
    return during


def test_a_write_on_the_native_pool_lets_the_loop_run():
    assert _ticks_while(in_native_thread) > 0


def test_a_write_on_the_loop_itself_stalls_it():
    assert _ticks_while(lambda fn: fn()) == 0  # what the offload avoids


def test_batches_write_through_the_offload(tmp_path):
    schema = pa.schema([("x", pa.int64())])
    calls = []

    def offload(fn):
        calls.append(fn)
        return in_native_thread(fn)

    batches = ParquetBatches(tmp_path, "w", schema, flush_s=60)
    batches.start(offload=offload)  # the flush loop on a plain thread; flushed by hand here
    batches.append((1,))
    batches.append((2,))
    assert batches.flush() == 2
    batches.close()
    assert len(calls) == 1
    (written,) = tmp_path.glob("w-*.parquet")
    assert pq.read_table(written).column("x").to_pylist() == [1, 2]
