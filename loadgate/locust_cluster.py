"""Locust's own distributed mode: one master, N local worker processes.

The harness never invents its own distribution layer: it starts the real
``locust`` command as a headless master that waits for ``N`` workers, and
``N`` ``locust --worker`` processes on this machine. Remote machines join the
same master with ``loadgate worker --master HOST`` (plain ``locust --worker``
underneath). Every process is an owned child like the stack's services
(:func:`stack.ownership.spawn_owned`: own session, parent-death signal, owner
tag), so a killed harness leaves no generator behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runconfig.constants import DEFAULT_SEED
from runformat.schemas import DRAIN_TIMEOUT_S, REQUEST_TIMEOUT_S
from stack.ownership import spawn_owned
from stack.ports import free_port

__all__ = ["DRAIN_TIMEOUT_S", "REQUEST_TIMEOUT_S", "LocustCluster", "default_worker_count"]
REPO_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = f"{REPO_ROOT / 'locustfile.py'},{REPO_ROOT / 'scenarios' / 'loadgate_shape.py'}"


def default_worker_count() -> int:
    """One worker per two cores: the service under test shares this machine."""
    return max(1, (os.cpu_count() or 2) // 2)


def locust_command() -> list[str]:
    return [sys.executable, "-m", "locust"]


def plugin_args(run_dir: Path, plan: Path, credentials: Path, drivers: int, seed: int) -> list[str]:
    return [
        "--loadgate-run-dir",
        str(run_dir),
        "--loadgate-plan",
        str(plan),
        "--loadgate-credentials",
        str(credentials),
        "--loadgate-arrival-drivers",
        str(drivers),
        "--loadgate-seed",
        str(seed),
    ]


@dataclass
class LocustCluster:
    run_dir: Path
    host: str
    plan: Path
    credentials: Path
    workers: int = field(default_factory=default_worker_count)
    web: bool = False
    seed: int = DEFAULT_SEED
    master_bind: str = "127.0.0.1"
    """Address the master listens on; remote workers need a reachable one."""
    master_port: int | None = None
    """Fixed master port (remote workers must know it); default: a free one."""
    remote_workers: int = 0
    """Workers started elsewhere (``loadgate worker``) the master waits for too."""
    place: Callable[[], None] | None = None
    """Runs in each Locust process before exec: the generator's side of the CPU split
    (:mod:`stack.isolation`)."""
    master: subprocess.Popen[bytes] | None = None
    worker_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_port: int | None = None

    @property
    def expected_workers(self) -> int:
        return self.workers + self.remote_workers

    def start(self) -> None:
        port = self.master_port or free_port()
        self.port = port
        common = [
            "-f",
            LOCUSTFILES,
            *plugin_args(
                self.run_dir, self.plan, self.credentials, self.expected_workers, self.seed
            ),
        ]
        master_args = [
            *common,
            "--master",
            "--master-bind-host",
            self.master_bind,
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(self.expected_workers),
            "--host",
            self.host,
            "--csv",
            str(self.run_dir / "locust" / "locust"),
            "--csv-full-history",
            "--stop-timeout",
            f"{DRAIN_TIMEOUT_S:g}",
            "--loglevel",
            "WARNING",
        ]
        if self.web:
            self.web_port = free_port()
            master_args += [
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(self.web_port),
                "--autostart",
                "--autoquit",
                "5",
            ]
        else:
            master_args += ["--headless"]
        self.master = self._spawn(master_args, "master")
        for index in range(self.workers):
            self.worker_procs.append(
                self._spawn(
                    [
                        *common,
                        "--worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(port),
                        "--loglevel",
                        "WARNING",
                    ],
                    f"worker-{index}",
                )
            )

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(self.run_dir / "locust" / f"{name}.log", "ab") as log:
            return spawn_owned(
                [*locust_command(), *args], log, REPO_ROOT, os.environ, place=self.place
            )

    @property
    def pids(self) -> dict[str, int]:
        named = {f"locust-worker-{i}": p.pid for i, p in enumerate(self.worker_procs)}
        if self.master is not None:
            named["locust-master"] = self.master.pid
        return named

    def finished(self) -> bool:
        return self.master is not None and self.master.poll() is not None

    def wait(self, timeout: float) -> int | None:
        assert self.master is not None
        try:
            return self.master.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the master first (it tells workers to quit), then make sure."""
        procs = [p for p in (self.master, *self.worker_procs) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
