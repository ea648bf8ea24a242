"""CPU isolation of the load generator from the system under test on one host.

When the stack runs on the machine that generates the load (the ``local`` and
``containers`` providers), both compete for the same cores; a Locust worker whose
event loop waits for a core measures its own queueing, not the service's latency
(the run is INVALID on generator lag). A per-process nice is not enough (measured:
worker lag P99 54 ms at nice 15 on 2 cores), so one side is placed as a whole:

- ``cpuset``: the generator (Locust master, workers, the harness) may run only on
  the generator's CPUs, the stack only on the others (``sched_setaffinity`` for
  local processes, set before exec and inherited by every child, Postgres backends
  included; ``--cpuset-cpus`` for containers). Hard: the stack never gets an idle
  generator core.
- ``weights``: one cgroup per side (cgroup v1 ``cpu.shares``, v2 ``cpu.weight``), the
  generator's weight far above the stack's; the scheduler gives the generator the
  CPU it asks for first and the stack everything else, idle generator time
  included. Containers stay in the engine's own cgroup, which is a sibling of the
  generator's with the default weight, so the generator's weight decides there too.

This module only *places* processes; which mechanism a run uses and how the CPUs
are split is decided by :func:`plan_isolation` from the config and the host. The
stack's providers place their own processes through :class:`SidePlacement`; the
generator side is placed by loadgate's orchestration (layers point down: nothing
here knows about Locust). Cgroups are named ``loadgate-<owner pid>-<tag>-<side>`` so
:func:`reap_cgroups` can remove those of dead owners, like
:mod:`stack.ownership` does for processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from stack.errors import StackError

Mechanism = Literal["cpuset", "weights", "none"]
MODES = ("auto", "cpuset", "weights", "none")
#: ``auto`` tries weights first and falls back to cpuset (no writable cgroup: not root, a
#: read-only cgroupfs); measured on a shared 2-core box, docs/isolation.md.
PREFERRED: tuple[Mechanism, Mechanism] = ("weights", "cpuset")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "loadgate-"
#: cgroup v1 ``cpu.shares`` (default 1024): the generator's group outweighs the stack's
#: 16:1, and every other runnable task on the host (each weighs 1024).
GENERATOR_SHARES, STACK_SHARES = 16384, 1024
#: cgroup v2 ``cpu.weight`` (default 100), the same ratio.
GENERATOR_WEIGHT, STACK_WEIGHT = 1600, 100


class IsolationError(StackError):
    """Bad isolation input (impossible CPU split, unknown mode): one line naming the fix."""


# --- the split ----------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSplit:
    """Which CPUs each side gets (generator first: its lag decides validity)."""

    generator: tuple[int, ...]
    stack: tuple[int, ...]


def host_cpus() -> list[int]:
    """The CPUs this process may run on (a container or taskset may allow fewer)."""
    return sorted(os.sched_getaffinity(0))


def parse_cpu_list(text: str) -> list[int]:
    """``"0,2-3"`` → ``[0, 2, 3]`` (the kernel's cpuset list syntax)."""
    cpus: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise IsolationError(
                f"--generator-cpus {text!r}: give a count (e.g. 1) or a CPU list (e.g. 0 or 0-1,3)"
            )
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise IsolationError(f"--generator-cpus {text!r}: range {low}-{high} runs backwards")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def default_generator_count(n_cpus: int) -> int:
    """Half the cores, at least one (1 + 1 on 2 cores): Locust's default is one worker per
    two cores, and the master and the harness share the generator's cores with them."""
    return max(1, n_cpus // 2)


def split_cpus(available: Sequence[int], generator_cpus: str | int | None) -> CpuSplit:
    """The split for ``generator_cpus``: ``None``/``"auto"`` = the default count, a plain
    integer = a count (the lowest CPUs go to the generator), anything else a CPU list in
    the kernel's syntax (``"0-1,3"``; one CPU by number: ``"1-1"``)."""
    cpus = sorted(available)
    text = "auto" if generator_cpus is None else str(generator_cpus).strip()
    if len(cpus) < 2:
        raise IsolationError(
            f"this host lets loadgate use {len(cpus)} CPU: a split needs at least 2; "
            "use --isolation weights or --isolation none"
        )
    if text == "auto":
        count = default_generator_count(len(cpus))
        return CpuSplit(tuple(cpus[:count]), tuple(cpus[count:]))
    if text.isdigit():
        count = int(text)
        if not 1 <= count < len(cpus):
            raise IsolationError(
                f"--generator-cpus {count}: this host has {len(cpus)} CPUs for loadgate; give "
                f"1..{len(cpus) - 1} so the system under test keeps at least one"
            )
        return CpuSplit(tuple(cpus[:count]), tuple(cpus[count:]))
    chosen = parse_cpu_list(text)
    missing = sorted(set(chosen) - set(cpus))
    if missing:
        raise IsolationError(
            f"--generator-cpus {text!r}: CPU {missing[0]} is not available here "
            f"(available: {_cpu_text(cpus)})"
        )
    rest = [c for c in cpus if c not in chosen]
    if not rest:
        raise IsolationError(
            f"--generator-cpus {text!r} takes every CPU: leave at least one for the system "
            "under test"
        )
    return CpuSplit(tuple(chosen), tuple(rest))


def _cpu_text(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


# --- which mechanism ------------------------------------------------------------------


def cgroup_cpu_root() -> tuple[int, Path] | None:
    """``(version, directory)`` of a writable cgroup hierarchy with the CPU controller."""
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.shares").exists() and os.access(v1, os.W_OK):
        return 1, v1
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        subtree = CGROUP_ROOT / "cgroup.subtree_control"
        if os.access(subtree, os.W_OK):
            return 2, CGROUP_ROOT
    return None


def unavailable(mechanism: Mechanism, n_cpus: int) -> str | None:
    """Why ``mechanism`` cannot run here, or None."""
    if mechanism == "cpuset" and n_cpus < 2:
        return f"cpuset needs at least 2 CPUs (this host lets loadgate use {n_cpus})"
    if mechanism == "weights" and cgroup_cpu_root() is None:
        return (
            "weights need a writable cgroup with the cpu controller "
            "(v1 cpu.shares or v2 cpu.weight)"
        )
    return None


@dataclass(frozen=True)
class IsolationPlan:
    """What a run asked for and what it got; :meth:`record` goes into the manifest."""

    requested: str
    mechanism: Mechanism
    split: CpuSplit
    note: str | None = None

    def record(self) -> dict[str, Any]:
        """The manifest's ``isolation`` field (docs/run-directory.md)."""
        return {
            "requested": self.requested,
            "mechanism": self.mechanism,
            "generator_cpus": list(self.split.generator),
            "stack_cpus": list(self.split.stack),
            "note": self.note,
        }


def plan_isolation(
    mode: str,
    generator_cpus: str | int | None,
    available: Sequence[int] | None = None,
    check: Any = unavailable,
) -> IsolationPlan:
    """Choose the mechanism for ``mode`` (auto/cpuset/weights/none) and split the CPUs.

    ``auto`` takes the first of :data:`PREFERRED` that works here and names the fallback
    in ``note``; an explicit mechanism that cannot work is an error naming why. The
    split is checked in every mode (a bad ``--generator-cpus`` is an error even with
    weights, whose CPU counts are what the report states)."""
    cpus = list(available) if available is not None else host_cpus()
    if mode not in MODES:
        raise IsolationError(f"--isolation {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return IsolationPlan(mode, "none", CpuSplit(tuple(cpus), tuple(cpus)), "isolation off")
    if len(cpus) < 2 and generator_cpus in (None, "auto"):
        split = CpuSplit(tuple(cpus), tuple(cpus))
    else:
        split = split_cpus(cpus, generator_cpus)
    if mode != "auto":
        why = check(mode, len(cpus))
        if why:
            raise IsolationError(f"--isolation {mode}: {why}; use --isolation auto or none")
        return IsolationPlan(mode, mode, split)  # type: ignore[arg-type]
    reasons = []
    for mechanism in PREFERRED:
        why = check(mechanism, len(cpus))
        if why is None:
            note = f"fell back to {mechanism}: {reasons[0]}" if reasons else None
            return IsolationPlan(mode, mechanism, split, note)
        reasons.append(why)
    return IsolationPlan(mode, "none", split, "no isolation available: " + "; ".join(reasons))


# --- placing processes ----------------------------------------------------------------


def set_process_affinity(pid: int, cpus: Sequence[int]) -> None:
    """Pin every thread of ``pid`` (``sched_setaffinity`` on a pid sets one thread only)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cpus)


@dataclass
class SidePlacement:
    """Where one side's processes go: a CPU set or a cgroup. Picklable enough for a
    ``preexec_fn`` (only paths and ints are used in the child)."""

    side: str
    mechanism: Mechanism
    cpus: tuple[int, ...]
    cgroup: Path | None = None

    def enter(self) -> None:
        """Place the calling process (run in a child just before exec: inherited)."""
        if self.mechanism == "cpuset":
            os.sched_setaffinity(0, self.cpus)
        elif self.mechanism == "weights" and self.cgroup is not None:
            (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def place(self, pid: int) -> None:
        """Place a running process (all its threads) on this side."""
        if self.mechanism == "cpuset":
            set_process_affinity(pid, self.cpus)
        elif self.mechanism == "weights" and self.cgroup is not None:
            (self.cgroup / "cgroup.procs").write_text(str(pid))

    def container_kwargs(self) -> dict[str, Any]:
        """docker-py ``run`` kwargs for a container of this side."""
        if self.mechanism == "cpuset":
            return {"cpuset_cpus": _cpu_text(self.cpus)}
        return {}


@dataclass
class Isolation:
    """One run's isolation: creates the cgroups it needs and removes them at :meth:`close`."""

    plan: IsolationPlan
    tag: str
    generator: SidePlacement = field(init=False)
    stack: SidePlacement = field(init=False)
    _root: tuple[int, Path] | None = field(default=None, init=False)
    _restore_affinity: list[int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        mechanism, split = self.plan.mechanism, self.plan.split
        self.generator = SidePlacement("generator", mechanism, split.generator)
        self.stack = SidePlacement("stack", mechanism, split.stack)
        if mechanism == "weights":
            self._root = cgroup_cpu_root()
            if self._root is None:
                raise IsolationError("weights: no writable cgroup with the cpu controller")
            try:
                self.generator.cgroup = self._make_group("generator", *_weights("generator"))
                self.stack.cgroup = self._make_group("stack", *_weights("stack"))
            except OSError as exc:
                self.close()
                raise IsolationError(f"weights: cannot create a cgroup ({exc})") from None

    def _make_group(self, side: str, shares: int, weight: int) -> Path:
        assert self._root is not None
        version, root = self._root
        path = root / f"{CGROUP_PREFIX}{os.getpid()}-{self.tag}-{side}"
        if version == 2:
            subtree = root / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
        path.mkdir(exist_ok=True)
        if version == 1:
            (path / "cpu.shares").write_text(str(shares))
        else:
            (path / "cpu.weight").write_text(str(weight))
        if side == "stack":
            # Services that run as another user (Postgres refuses root) join the group in
            # their own pre-exec, after Popen dropped privileges: they need to write it.
            (path / "cgroup.procs").chmod(0o666)
        return path

    def place_self(self) -> None:
        """Put the calling harness process (every thread) on the generator's side."""
        if self.plan.mechanism == "cpuset":
            self._restore_affinity = sorted(os.sched_getaffinity(0))
        self.generator.place(os.getpid())

    def close(self) -> None:
        """Move the harness back and remove the cgroups (their processes have stopped)."""
        if self._restore_affinity is not None:
            with contextlib.suppress(OSError):
                set_process_affinity(os.getpid(), self._restore_affinity)
            self._restore_affinity = None
        if self._root is None:
            return
        version, root = self._root
        with contextlib.suppress(OSError):
            (root / "cgroup.procs").write_text(str(os.getpid()))
        for side in (self.generator, self.stack):
            if side.cgroup is not None:
                remove_cgroup(side.cgroup, root)
                side.cgroup = None


def _weights(side: str) -> tuple[int, int]:
    if side == "generator":
        return GENERATOR_SHARES, GENERATOR_WEIGHT
    return STACK_SHARES, STACK_WEIGHT


def remove_cgroup(path: Path, root: Path, timeout: float = 5.0) -> bool:
    """Remove a cgroup: move what still runs in it to ``root``, then rmdir (retried while
    exiting processes leave it). Returns whether it is gone."""
    deadline = time.monotonic() + timeout
    while path.exists():
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            path.rmdir()
        if not path.exists() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return not path.exists()


def reap_cgroups() -> list[str]:
    """Remove ``loadgate-<pid>-*`` cgroups whose owner pid is dead."""
    found = cgroup_cpu_root()
    if found is None:
        return []
    _, root = found
    reaped = []
    pattern = re.compile(rf"^{re.escape(CGROUP_PREFIX)}(\d+)-")
    for path in root.glob(f"{CGROUP_PREFIX}*"):
        match = pattern.match(path.name)
        dead = match and path.is_dir() and not psutil.pid_exists(int(match.group(1)))
        if dead and remove_cgroup(path, root):
            reaped.append(f"cgroup {path}")
    return reaped
