"""The sampler loop: every sampler once a second, rows into ``samples/``.

A sampler is anything with a ``name`` and a ``sample()`` returning rows of
``(source, metric, value, labels)``; the loop survives a sampler that fails and
records the failure as a ``sampler_errors`` row, since a service paused or killed
by a fault must not end the run's measurements.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from runformat.records import SAMPLE_SCHEMA, ParquetBatches, now_us

Row = tuple[str, str, float, str]


def encode_labels(**labels: object) -> str:
    """A row's labels as sorted JSON ("" for none): the form ``samples/`` stores."""
    return json.dumps(labels, sort_keys=True) if labels else ""


class Sampler(Protocol):
    name: str

    def sample(self) -> Iterable[Row]: ...


class SamplerLoop:
    """Runs every sampler once a second in a thread, until stopped."""

    def __init__(self, run_dir: Path, samplers: list[Sampler], interval_s: float = 1.0):
        self.samplers = samplers
        self.interval_s = interval_s
        self.batches = ParquetBatches(Path(run_dir) / "samples", "stack", SAMPLE_SCHEMA)
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="samplers", daemon=True)

    def start(self) -> None:
        self.batches.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop, taking one last sample so final counters cover every request."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample_once()
        self.batches.close()
        for sampler in self.samplers:  # connections held for the run
            close = getattr(sampler, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def sample_once(self) -> None:
        ts = now_us()
        for sampler in self.samplers:
            try:
                rows = list(sampler.sample())
            except Exception as exc:
                self.errors[sampler.name] = f"{type(exc).__name__}: {exc}"
                self.batches.append((ts, sampler.name, "sampler_errors", 1.0, ""))
                continue
            for source, metric, value, labels in rows:
                self.batches.append((ts, source, metric, value, labels))

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))
