"""CPU, memory, open fds and sockets of process trees, the whole host, and containers.

A service's cost is its whole process tree (Postgres backends, uvicorn workers), read
from ``/proc`` and psutil once a tick; the readers here are kept cheap because the
harness shares the box with the service it measures (issue 10).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

from loadgate.samplers.loop import Row
from runformat.metrics import CPU_PERCENT, MEMORY_PERCENT, OPEN_FDS, RSS_BYTES, SOCKETS
from runformat.schemas import HOST_CPU_METRIC, HOST_SOURCE


def count_fds(pid: int) -> int:
    """Open fds of one process; 0 if it is gone.

    One ``stat`` of ``/proc/PID/fd``, whose size is the number of open fds (Linux 6.2+),
    instead of listing the directory; older kernels report 0 there and the directory
    is listed.
    """
    path = f"/proc/{pid}/fd"
    try:
        size = os.stat(path).st_size
        return size if size > 0 else len(os.listdir(path))
    except OSError:
        return 0


def count_sockets(pid: int) -> int:
    """Sockets among one process's fds (0 if it is gone): a readlink per fd.

    Sockets, not "TCP connections": psutil's ``Process.net_connections`` re-reads the
    kernel's whole TCP table for *each* process, and that table is slow to produce under
    load (~80 ms a read with 1,400 sockets). With the Postgres backends that took more than
    a second per 1 Hz tick: the sampler thread used two thirds of a core of the two the
    service under test was running on (issue 10). Still a readlink per fd, thousands a
    second under load, so :class:`ProcessSampler` counts them every few seconds only.
    """
    sockets = 0
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
    for entry in entries:
        try:
            if os.readlink(entry.path).startswith("socket:["):
                sockets += 1
        except OSError:
            continue
    return sockets


def read_ppids() -> dict[int, int]:
    """pid -> parent pid of every process on the host, from ``/proc/PID/stat``."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 2)
        if len(fields) >= 2:
            parents[int(entry.name)] = int(fields[1])
    return parents


class ProcessTable:
    """Who is whose child, read from ``/proc`` at most once per ``max_age_s``.

    Finding a process tree means reading the ``stat`` of *every* process on the host
    (psutil's ``children(recursive=True)`` does the same). With one tree per sampled
    service that was about ten full scans a second; the samplers of one tick now share
    one scan.
    """

    def __init__(self, max_age_s: float = 0.5) -> None:
        self.max_age_s = max_age_s
        self._children: dict[int, list[int]] = {}
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def descendants(self, pid: int) -> list[int]:
        """Every process below ``pid`` (children, their children...), parents first."""
        with self._lock:
            if time.monotonic() - self._read_at > self.max_age_s:
                children: dict[int, list[int]] = {}
                for child, parent in read_ppids().items():
                    children.setdefault(parent, []).append(child)
                self._children, self._read_at = children, time.monotonic()
            children = self._children
        found = list(children.get(pid, ()))
        for child in found:  # the list grows as it is walked: breadth first
            found.extend(children.get(child, ()))
        return found


PROCESS_TABLE = ProcessTable()
"""Shared by every :class:`ProcessSampler` of the process (one scan per tick)."""

SOCKETS_EVERY_S = 5.0
"""Seconds between two socket counts of one process tree (a readlink per fd)."""


@dataclass
class ProcessSampler:
    """CPU, memory, open fds and sockets of one process tree (a service or a worker).

    ``cpu_percent``, ``rss_bytes`` and ``open_fds`` are sampled every tick; ``sockets``
    every ``sockets_every_s`` (rows only on the ticks that count them): a Postgres under
    load has thousands of fds, and a readlink each per second was about a tenth of the
    harness's profile.
    """

    name: str
    pid: int
    source: str = ""
    children: bool = True
    """False for the harness itself, whose children (Locust, local services) have their
    own samplers and would be counted twice."""
    locate: Callable[[], int] | None = None
    """Where the process is now, for a service that a fault restarts under a new pid
    (``stack.services[name].pid``); without it a restarted service's samples stop."""
    table: ProcessTable = field(default_factory=lambda: PROCESS_TABLE)
    sockets_every_s: float = SOCKETS_EVERY_S
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _sockets_at: float = -float("inf")

    def _root(self) -> psutil.Process:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            current = self.locate() if self.locate is not None else self.pid
            if current == self.pid:
                raise
            self.pid = current
            self._procs.clear()
            self._sockets_at = -float("inf")
            root = psutil.Process(self.pid)
        # cpu_percent needs the same Process object across calls.
        return self._procs.setdefault(root.pid, root)

    def _tree(self, root: psutil.Process) -> list[psutil.Process]:
        """The root and its descendants, as the Process objects of earlier ticks."""
        if not self.children:
            return [root]
        tree = [root]
        for pid in self.table.descendants(root.pid):
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = self._procs[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
            tree.append(proc)
        alive = {p.pid for p in tree}
        for pid in [p for p in self._procs if p not in alive]:
            del self._procs[pid]  # gone: a later process may reuse its pid
        return tree

    def sample(self) -> Iterable[Row]:
        tree = self._tree(self._root())
        count_now = time.monotonic() - self._sockets_at >= self.sockets_every_s
        cpu = rss = fds = sockets = 0.0
        for proc in tree:
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            fds += count_fds(proc.pid)
            if count_now:
                sockets += count_sockets(proc.pid)
        source = self.source or f"process:{self.name}"
        rows = [
            (source, CPU_PERCENT, cpu, ""),
            (source, RSS_BYTES, rss, ""),
            (source, OPEN_FDS, fds, ""),
        ]
        if count_now:
            self._sockets_at = time.monotonic()
            rows.append((source, SOCKETS, sockets, ""))
        return rows


@dataclass
class HostSampler:
    """Whole-host CPU (100 = every core busy) and memory.

    Shown beside the verdict: a box running the stack and the generator together is
    measuring both at once, and a host near 100 % slows the generator as much as the
    service.
    """

    name: str = "host"

    def __post_init__(self) -> None:
        psutil.cpu_percent(None)  # the first call only starts the interval

    def sample(self) -> Iterable[Row]:
        return [
            (HOST_SOURCE, HOST_CPU_METRIC, float(psutil.cpu_percent(None)), ""),
            (HOST_SOURCE, MEMORY_PERCENT, float(psutil.virtual_memory().percent), ""),
        ]


@dataclass
class ContainerSampler:
    """A container's processes, sampled like local ones through their host pid.

    The engine's own stats API answers slowly (a second or more per call),
    which would stretch a 1 Hz loop; a local engine's containers are host
    processes, so psutil reads them directly once their pid is known.
    """

    name: str
    container_id: str
    _process: ProcessSampler | None = None

    def sample(self) -> Iterable[Row]:
        if self._process is None:
            from stack.engine import connect_engine

            client = connect_engine(timeout=5)
            try:
                pid = int(client.containers.get(self.container_id).attrs["State"]["Pid"])
            finally:
                client.close()
            if pid <= 0:
                raise RuntimeError(f"container {self.container_id[:12]} is not running")
            self._process = ProcessSampler(self.name, pid)
        try:
            return self._process.sample()
        except psutil.NoSuchProcess:
            self._process = None  # restarted: a new pid, looked up on the next tick
            raise
