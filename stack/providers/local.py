"""The ``local`` provider: every service a child process on 127.0.0.1 (the marketplace
on ``StackConfig.service_host`` when remote workers must reach it).

Used where no Docker engine answers. PostgreSQL 15, PgBouncer and Redis come
from the OS packages, OSRM from the ``osrm-bindings`` wheel, the Stripe mock
from localstripe. Each service gets its own temporary directory tree
(``/tmp/loadgate-stack-<owner pid>-<stack id>-*``) that is removed at teardown.

Teardown must hold even when the harness is SIGKILLed: each service is an
owned child (:func:`stack.ownership.spawn_owned`: own session, parent-death
signal, owner tag in its environment), so the next ``loadgate`` start can find
and kill anything that still escaped, and delete leftover temp trees.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from stack.config import StackConfig
from stack.errors import BinaryMissing, StackError
from stack.isolation import reap_cgroups
from stack.osrm_map import ensure_map, osrm_bin_dir
from stack.ownership import make_owned_temp_dir, reap_processes, reap_temp_dirs, spawn_owned
from stack.providers.base import Peers, Ports, Provider, RunningService, service_context
from stack.spec import ServiceContext, ServiceSpec

HOST = "127.0.0.1"
TEMP_PREFIX = "loadgate-stack-"


def find_pg_bin() -> Path | None:
    """PostgreSQL 15's server binaries (Debian keeps them off PATH)."""
    for candidate in (
        "/usr/lib/postgresql/15/bin",
        *sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
    ):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until every process of a killed group has really exited.

    Deleting a data directory while a SIGKILLed initdb is still exiting
    races with its last writes; waiting here makes teardown deterministic.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc in psutil.process_iter(["pid", "status"]):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != "zombie":
                    alive.append(proc)
        if not alive:
            return
        time.sleep(0.05)


class LocalProvider(Provider):
    """Services as child processes with free ports and temporary directories."""

    name = "local"

    def __init__(self, config: StackConfig, stack_id: str) -> None:
        super().__init__(config, stack_id)
        self.root: Path | None = None
        self.pg_bin: Path | None = None
        self.osrm_data: Path | None = None
        self.progress = lambda message: None

    # --- prerequisites --------------------------------------------------------

    def prepare(self, specs: list[ServiceSpec]) -> None:
        names = {s.name for s in specs}
        if names & {"postgres", "replica", "pgbouncer"}:
            self._require_postgres_tools(names)
        if "redis" in names and not shutil.which("redis-server", path=self._path()):
            raise BinaryMissing(
                "redis-server not found: install it (apt-get install redis-server, or run "
                "scripts/run.sh which installs it) or use --provider containers"
            )
        if "osrm" in names:
            bin_dir = osrm_bin_dir()
            if not (bin_dir / "osrm-routed").exists():
                raise BinaryMissing(
                    f"osrm-routed not found in {bin_dir}: reinstall the osrm-bindings wheel "
                    "(pip install osrm-bindings, needs Python >= 3.12)"
                )
            self.osrm_data = ensure_map(progress=self.progress)
        if "stripe" in names:
            try:
                import localstripe  # noqa: F401
            except ImportError as exc:
                raise BinaryMissing(
                    "localstripe is not installed: pip install localstripe "
                    "(or reinstall loadgate with its dependencies)"
                ) from exc
        self.root = make_owned_temp_dir(TEMP_PREFIX, self.stack_id)  # postgres traverses it

    def _require_postgres_tools(self, names: set[str]) -> None:
        self.pg_bin = find_pg_bin()
        if self.pg_bin is None:
            raise BinaryMissing(
                "PostgreSQL server binaries (initdb, postgres) not found: install them "
                "(apt-get install postgresql) or use --provider containers"
            )
        if "pgbouncer" in names and not shutil.which("pgbouncer", path=self._path()):
            raise BinaryMissing(
                "pgbouncer not found: install it (apt-get install pgbouncer) "
                "or use --provider containers"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise StackError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user: "
                    "create one (useradd --system postgres) or run loadgate as a normal user"
                ) from exc

    @staticmethod
    def _path() -> str:
        """The caller's PATH plus the sbin dirs where Debian puts pgbouncer."""
        return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

    # --- start / stop ---------------------------------------------------------

    def start(self, spec: ServiceSpec, host_ports: Ports, peers: Peers) -> RunningService:
        assert self.root is not None, "prepare() must run before start()"
        service_root = self.root / spec.name
        data_dir, config_dir = service_root / "data", service_root / "conf"
        for directory in (service_root, data_dir, config_dir):
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        ctx = self._context(spec, host_ports, peers, data_dir, config_dir)
        for file_name, text in spec.files(ctx).items():
            (config_dir / file_name).write_text(text)
            (config_dir / file_name).chmod(0o644)
        user = self._run_as(spec)
        if user is not None:
            os.chown(data_dir, user.pw_uid, user.pw_gid)
            data_dir.chmod(0o700)
        log_path = service_root / "service.log"
        process = self._spawn(spec.command(ctx), ctx, spec, user, data_dir, log_path)
        host = self._host(spec)
        return RunningService(
            spec=spec,
            host=host,
            ports=dict(host_ports),
            url=spec.url(host, host_ports, self.config),
            peer_host=HOST,
            peer_ports=dict(host_ports),
            handle=process,
            log_path=log_path,
            pid=process.pid,
        )

    def _context(
        self, spec: ServiceSpec, ports: Ports, peers: Peers, data_dir: Path, config_dir: Path
    ) -> ServiceContext:
        return service_context(
            spec,
            self.config,
            ports,
            peers,
            data_dir=data_dir,
            config_dir=config_dir,
            pg_bin=self.pg_bin or Path("/usr/lib/postgresql/15/bin"),
            osrm_bin=osrm_bin_dir(),
            osrm_data=self.osrm_data or Path("/nonexistent"),
            stripe_mock=f"{sys.executable} -m stack.stripe_mock",
            listen_host=self._host(spec),
        )

    def _host(self, spec: ServiceSpec) -> str:
        """Only the system under test may face other hosts (``StackConfig.service_host``):
        remote workers reach it; the databases and mocks stay on loopback."""
        return self.config.service_host if spec.name == "marketplace" else HOST

    @staticmethod
    def _run_as(spec: ServiceSpec) -> pwd.struct_passwd | None:
        if spec.run_as_postgres and os.geteuid() == 0:
            return pwd.getpwnam("postgres")
        return None

    def _spawn(
        self,
        command: str,
        ctx: ServiceContext,
        spec: ServiceSpec,
        user: pwd.struct_passwd | None,
        cwd: Path,
        log_path: Path,
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PATH": self._path(), **spec.env(ctx)}
        if user is not None:
            env["HOME"] = user.pw_dir
        with open(log_path, "ab") as log:
            return spawn_owned(
                ["/bin/sh", "-c", command],
                log,
                cwd,
                env,
                stack_id=self.stack_id,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                place=self.config.placement.enter if self.config.placement else None,
            )

    def exit_code(self, service: RunningService) -> int | None:
        return service.handle.poll()

    def log_tail(self, service: RunningService, lines: int = 20) -> list[str]:
        if service.log_path is None or not service.log_path.exists():
            return []
        text = service.log_path.read_text(errors="replace")
        return text.splitlines()[-lines:]

    def stop(self, service: RunningService, timeout: float = 10.0) -> None:
        process: subprocess.Popen[bytes] = service.handle
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, service.spec.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # The service's own children (postgres backends, a half-done initdb)
        # share its process group: make sure none outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        _wait_group_gone(process.pid, timeout=5)

    def pause(self, service: RunningService) -> None:
        os.killpg(service.handle.pid, signal.SIGSTOP)

    def resume(self, service: RunningService) -> None:
        os.killpg(service.handle.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.root is not None:
            for _ in range(3):  # a just-killed writer may still be flushing
                shutil.rmtree(self.root, ignore_errors=True)
                if not self.root.exists():
                    break
                time.sleep(0.2)
            self.root = None

    # --- leftovers of a SIGKILLed harness --------------------------------------

    @classmethod
    def reap_leftovers(cls) -> list[str]:
        """Kill orphaned service processes and delete temp trees of dead owners."""
        return [*reap_processes(), *reap_temp_dirs(TEMP_PREFIX), *reap_cgroups()]
