"""How distorted is this Locust worker's own timing?  Measured from inside its event loop.

A Locust worker is one gevent loop: when it is busy (too many users, CPU starved by the
service on the same host) every greenlet waits for its turn, so requests go out late and
responses are read late, and the recorded latencies describe the generator rather than
the system.  The direct measure is scheduling lag: a greenlet asks to sleep
``LAG_INTERVAL_S`` and records by how much it overslept, ten times a second.  The
worker's CPU (100 = one core) is recorded once a second beside it, and so is its longest
garbage-collection pause of that second: a collection stops every greenlet, so when the
lag spikes, this says whether the worker's own heap was the cause.  All go to
``samples/`` under source ``generator`` with labels ``{"worker": id}``; analysis fails
the generator check when the lag's P99 at the gate step exceeds the configured bound.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import gevent
import psutil

from runformat.records import ParquetBatches, now_us
from runformat.schemas import (
    GC_PAUSE_METRIC,
    GENERATOR_CPU_METRIC,
    GENERATOR_SOURCE,
    LAG_INTERVAL_S,
    LAG_METRIC,
    SAMPLE_SCHEMA,
)
from scenarios.blocking import in_native_thread


class GcPauses:
    """The longest garbage-collection pause since the last :meth:`take`, from ``gc.callbacks``.

    The callback only does arithmetic on two floats: it runs inside the collector, where
    taking a lock (appending to the batches) could wait on this same thread.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._longest_ms = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._longest_ms = max(self._longest_ms, (time.perf_counter() - self._started) * 1e3)
            self._started = 0.0

    def take(self) -> float:
        longest, self._longest_ms = self._longest_ms, 0.0
        return longest

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


class GeneratorProbe:
    """Event-loop lag (10 Hz) and process CPU (1 Hz) of this worker, flushed like events."""

    def __init__(self, run_dir: Path, worker_id: str, flush_s: float = 2.0) -> None:
        self.labels = json.dumps({"worker": worker_id})
        self.batches = ParquetBatches(
            Path(run_dir) / "samples", f"generator-{worker_id}", SAMPLE_SCHEMA, flush_s
        )
        self._greenlet: Any = None
        self.gc_pauses = GcPauses()

    def lag_once(self) -> float:
        """Sleep one interval and return the overshoot in ms (never negative)."""
        started = time.perf_counter()
        gevent.sleep(LAG_INTERVAL_S)
        return max(0.0, (time.perf_counter() - started - LAG_INTERVAL_S) * 1000.0)

    def _loop(self) -> None:
        process = psutil.Process()
        process.cpu_percent(None)
        next_cpu = time.monotonic() + 1.0
        while True:
            lag = self.lag_once()
            self.batches.append((now_us(), GENERATOR_SOURCE, LAG_METRIC, lag, self.labels))
            if time.monotonic() >= next_cpu:
                next_cpu += 1.0
                cpu = process.cpu_percent(None)
                self.batches.append(
                    (now_us(), GENERATOR_SOURCE, GENERATOR_CPU_METRIC, cpu, self.labels)
                )
                pause = self.gc_pauses.take()
                self.batches.append(
                    (now_us(), GENERATOR_SOURCE, GC_PAUSE_METRIC, pause, self.labels)
                )

    def start(self) -> None:
        self.batches.start(spawn=gevent.spawn, offload=in_native_thread)
        self.gc_pauses.install()
        self._greenlet = gevent.spawn(self._loop)

    def close(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self.gc_pauses.remove()
        self.batches.close()
