"""Who started a process, container or temp dir, and is that harness still alive.

Teardown must hold even when the harness is SIGKILLed, and nothing may depend
on Ryuk (it cannot be pulled offline). So everything the harness starts is
marked with its owner and dies with it, or is reaped by the next start:

- child processes (stack services, Locust master and workers) run in their own
  session (a terminal's Ctrl-C reaches the harness first, which then stops
  them in order), get a parent-death signal (the kernel kills them when the
  harness dies) and carry ``LOADGATE_OWNER_PID`` (and the stack id) in their
  environment;
- containers and networks carry ``loadgate.*`` labels: owner pid, owner start
  time (a reused pid does not keep leftovers alive) and host;
- temp dirs are named ``<prefix><owner pid>-...``.

:func:`reap_processes`, :func:`reap_temp_dirs`, :func:`reap_containers` and
:func:`reap_networks` remove what belongs to dead owners. The stack's
providers and :mod:`loadgate.locust_cluster` all go through this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

from stack.engine import remove_container

if TYPE_CHECKING:
    import docker

OWNER_ENV = "LOADGATE_OWNER_PID"
STACK_ENV = "LOADGATE_STACK_ID"

LABEL_STACK = "loadgate.stack"
LABEL_SERVICE = "loadgate.service"
LABEL_OWNER_PID = "loadgate.owner-pid"
LABEL_OWNER_STARTED = "loadgate.owner-started"
"""Owner process start time: a reused pid does not keep leftovers alive."""
LABEL_OWNER_HOST = "loadgate.owner-host"
"""Only the machine that started a container judges whether its owner lives."""

_PR_SET_PDEATHSIG = 1


# --- child processes ----------------------------------------------------------------


def die_with_parent(parent_pid: int, place: Callable[[], None] | None = None) -> None:
    """Runs in the child just before exec: die when the harness dies; then ``place`` it
    (CPU set or cgroup, :mod:`stack.isolation`) so everything it starts inherits that."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the harness died before prctl took effect
        os._exit(1)
    if place is not None:
        place()


def owner_env(stack_id: str | None = None) -> dict[str, str]:
    """Environment entries that mark a child as this process's (and a stack's)."""
    env = {OWNER_ENV: str(os.getpid())}
    if stack_id is not None:
        env[STACK_ENV] = stack_id
    return env


def spawn_owned(
    args: Sequence[str],
    log: IO[bytes],
    cwd: Path,
    env: Mapping[str, str],
    stack_id: str | None = None,
    place: Callable[[], None] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start a child that is ours: own session, parent-death signal, owner tag.

    Output (stdout and stderr) goes to ``log``; ``place`` runs in the child before exec
    (CPU isolation, inherited by its own children); ``popen`` passes the rest
    (``user``, ``group``...) to :class:`subprocess.Popen`.
    """
    parent_pid = os.getpid()
    return subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**env, **owner_env(stack_id)},
        start_new_session=True,
        preexec_fn=lambda: die_with_parent(parent_pid, place),
        **popen,
    )


def reap_processes() -> list[str]:
    """Kill processes whose owner (``LOADGATE_OWNER_PID``) is dead."""
    reaped = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            owner = proc.environ().get(OWNER_ENV)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if owner and owner.isdigit() and not psutil.pid_exists(int(owner)):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                reaped.append(f"process {proc.info['pid']} ({proc.info['name']})")
    return reaped


# --- temp dirs ----------------------------------------------------------------------


def owned_temp_prefix(prefix: str, tag: str) -> str:
    """``<prefix><owner pid>-<tag>-``: what :func:`reap_temp_dirs` recognises."""
    return f"{prefix}{os.getpid()}-{tag}-"


def make_owned_temp_dir(prefix: str, tag: str) -> Path:
    """A fresh temp dir of this process, traversable by other users (postgres)."""
    path = Path(tempfile.mkdtemp(prefix=owned_temp_prefix(prefix, tag)))
    path.chmod(0o755)
    return path


def reap_temp_dirs(prefix: str) -> list[str]:
    """Delete ``<prefix><pid>-*`` temp dirs whose owner pid is dead."""
    reaped = []
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    for path in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        match = pattern.match(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            reaped.append(f"temp dir {path}")
    return reaped


# --- containers and networks --------------------------------------------------------


def _process_started(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return ""


def owner_labels(stack_id: str) -> dict[str, str]:
    """Labels put on every container and network of one stack."""
    pid = os.getpid()
    return {
        LABEL_STACK: stack_id,
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_STARTED: _process_started(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
    }


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the harness that made a labelled object still runs.

    Objects from another machine (a shared engine) count as alive: only their
    owner's machine can tell. A pid that now belongs to a process started at
    another time is a reused pid: the owner is dead.
    """
    host = labels.get(LABEL_OWNER_HOST)
    if host and host != socket.gethostname():
        return True
    pid_text = labels.get(LABEL_OWNER_PID, "")
    if not pid_text.isdigit() or not psutil.pid_exists(int(pid_text)):
        return False
    started = labels.get(LABEL_OWNER_STARTED)
    if not started:
        return True
    actual = _process_started(int(pid_text))
    return bool(actual) and abs(float(actual) - float(started)) < 1.0


def reap_containers(client: docker.DockerClient) -> list[str]:
    """Remove labelled containers whose owner is dead."""
    reaped = []
    for container in client.containers.list(all=True, filters={"label": LABEL_STACK}):
        labels = container.labels
        if owner_alive(labels):
            continue
        remove_container(container)
        reaped.append(
            f"container {container.name} ({labels.get(LABEL_SERVICE, '?')} of stack "
            f"{labels.get(LABEL_STACK)}, owner pid {labels.get(LABEL_OWNER_PID, '?')})"
        )
    return reaped


def reap_networks(client: docker.DockerClient) -> list[str]:
    """Remove labelled networks whose owner is dead."""
    import docker.errors

    reaped = []
    for network in client.networks.list(filters={"label": LABEL_STACK}):
        if owner_alive(network.attrs.get("Labels") or {}):
            continue
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
            reaped.append(f"network {network.name}")
    return reaped
