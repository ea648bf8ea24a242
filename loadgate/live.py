"""The live view of a running run: stage, users, RPS, P95, errors, generator CPU.

It reads the same raw event files the analysis will read (new files only,
each once), so what an engineer watches is what the report will say, not
Locust's rounded running statistics. Numbers cover the last ``window_s``
seconds of recorded requests.

On a terminal the view is a table redrawn every second (rich ``Live``).  When stdout is
not a terminal (CI logs, ``| tee``), a redrawn table prints nothing until the end, so
:func:`live_view` prints one plain, flushed line every ``PLAIN_INTERVAL_S`` seconds
instead: a 30-minute nightly log shows where the run is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
from rich.console import Console
from rich.live import Live
from rich.table import Table

from scenarios.plan import LoadPlan

COLUMNS = ["ts_us", "latency_us", "error_class", "users"]
#: Seconds between two plain progress lines when stdout is not a terminal.
PLAIN_INTERVAL_S = 10.0


@dataclass
class Snapshot:
    """What the live view shows, once per refresh."""

    elapsed_s: float
    duration_s: float
    stage: str
    users: int
    rps: float | None
    p95_ms: float | None
    error_rate: float | None
    generator_cpu: float
    requests: int


class LiveStats:
    def __init__(self, run_dir: Path, plan: LoadPlan, pids: dict[str, int], window_s: float = 10):
        self.events = run_dir / "events"
        self.plan = plan
        self.window_us = int(window_s * 1_000_000)
        self.seen: set[str] = set()
        self.recent: deque[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = deque()
        self.total = 0
        self.errors = 0
        self.started = time.time()
        self.last: Snapshot | None = None
        self.hold_status: str | None = None
        """Set by the run while the gate step is held past its plan (loadgate.hold)."""
        self.procs = {}
        for name, pid in pids.items():
            try:
                self.procs[name] = psutil.Process(pid)
                self.procs[name].cpu_percent(None)
            except psutil.NoSuchProcess:
                continue

    def refresh(self) -> None:
        for path in sorted(self.events.glob("*.parquet")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            try:
                table = pq.read_table(path, columns=COLUMNS)
            except (OSError, ValueError):
                continue
            ts = table["ts_us"].to_numpy()
            latency = table["latency_us"].to_numpy()
            failed = np.array([c != "" for c in table["error_class"].to_pylist()], dtype=bool)
            users = int(table["users"].to_numpy()[-1]) if table.num_rows else 0
            self.recent.append((ts, latency, failed, users))
            self.total += table.num_rows
            self.errors += int(failed.sum())
        if self.recent:
            newest = max(int(chunk[0].max()) for chunk in self.recent if len(chunk[0]))
            while (
                self.recent
                and len(self.recent[0][0])
                and (int(self.recent[0][0].max()) < newest - self.window_us)
            ):
                self.recent.popleft()

    def snapshot(self) -> Snapshot:
        elapsed = time.time() - self.started
        stage = self.plan.stage_at(elapsed)
        rps = p95 = err = None
        users = 0
        if self.recent:
            ts = np.concatenate([c[0] for c in self.recent])
            newest = ts.max()
            keep = ts >= newest - self.window_us
            latency = np.concatenate([c[1] for c in self.recent])[keep]
            failed = np.concatenate([c[2] for c in self.recent])[keep]
            users = self.recent[-1][3]
            if latency.size:
                rps = latency.size / (self.window_us / 1_000_000)
                p95 = float(np.percentile(latency, 95)) / 1000
                err = float(failed.mean())
        cpu = (
            max((p.cpu_percent(None) for n, p in self.procs.items() if "worker" in n), default=0.0)
            if self.procs
            else 0.0
        )
        return Snapshot(
            elapsed,
            self.plan.duration_s,
            self.hold_status or (stage.name if stage else "done"),
            users,
            rps,
            p95,
            err,
            cpu,
            self.total,
        )

    def render(self) -> Table:
        s = self.last = self.snapshot()
        table = Table(
            title=f"loadgate run · {s.elapsed_s:5.0f} s of {s.duration_s:.0f} s",
            title_justify="left",
        )
        for column in ("stage", "users", "req/s", "P95 ms", "errors", "gen CPU", "requests"):
            table.add_column(column, justify="right")
        table.add_row(*_cells(s))
        return table

    def line(self) -> str:
        """One plain progress line (no markup), for logs.

        Reuses the snapshot ``render`` just took when there is one: psutil's CPU percent
        covers the time since its previous call, so a second call right after would read
        about 0 %.
        """
        s = self.last if self.last is not None else self.snapshot()
        self.last = None
        stage, users, rps, p95, err, cpu, total = _cells(s)
        return (
            f"progress {s.elapsed_s:.0f}/{s.duration_s:.0f} s  stage {stage}  users {users}  "
            f"req/s {rps}  P95 {p95} ms  errors {err}  generator CPU {cpu}  requests {total}"
        )


def _cells(s: Snapshot) -> tuple[str, ...]:
    return (
        s.stage,
        str(s.users),
        f"{s.rps:.1f}" if s.rps is not None else "-",
        f"{s.p95_ms:.0f}" if s.p95_ms is not None else "-",
        f"{s.error_rate:.1%}" if s.error_rate is not None else "-",
        f"{s.generator_cpu:.0f}%",
        f"{s.requests:,}",
    )


class PlainProgress:
    """The non-terminal live view: ``update`` prints a line when one is due."""

    def __init__(self, live: LiveStats, console: Console, interval_s: float = PLAIN_INTERVAL_S):
        self.live, self.console, self.interval_s = live, console, interval_s
        self.next_at = time.monotonic()

    def update(self, _renderable: object = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next_at:
            return
        self.next_at = now + self.interval_s
        self.console.print(self.live.line(), markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()


@contextmanager
def live_view(live: LiveStats, console: Console) -> Iterator[Live | PlainProgress]:
    """A redrawn table on a terminal; plain progress lines every 10 s otherwise.

    Either way the caller calls ``view.update(live.render())`` about once a second.
    """
    if console.is_terminal:
        with Live(live.render(), console=console, refresh_per_second=1, transient=False) as view:
            yield view
        return
    plain = PlainProgress(live, console)
    plain.update(force=True)
    yield plain
    plain.update(force=True)
