"""The live view of a running run: stage, users, RPS, P95, errors, generator CPU.

It reads the same raw event files the analysis will read (new files only,
each once), so what an engineer watches is what the report will say, not
Locust's rounded running statistics. Numbers cover the last ``window_s``
seconds of recorded requests.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
from rich.table import Table

from scenarios.plan import LoadPlan

COLUMNS = ["ts_us", "latency_us", "error_class", "users"]


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

    def render(self) -> Table:
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
        table = Table(
            title=f"loadgate run · {elapsed:5.0f} s of {self.plan.duration_s:.0f} s",
            title_justify="left",
        )
        for column in ("stage", "users", "req/s", "P95 ms", "errors", "gen CPU", "requests"):
            table.add_column(column, justify="right")
        table.add_row(
            stage.name if stage else "done",
            str(users),
            f"{rps:.1f}" if rps is not None else "-",
            f"{p95:.0f}" if p95 is not None else "-",
            f"{err:.1%}" if err is not None else "-",
            f"{cpu:.0f}%",
            f"{self.total:,}",
        )
        return table
