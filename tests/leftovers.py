"""What a stack could leave behind, so tests can assert it left nothing."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import psutil

from stack.providers.local import STACK_ENV, TEMP_PREFIX


def processes_of(stack_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(STACK_ENV) == stack_id and proc.status() != "zombie":
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def temp_dirs_of(owner_pid: int, stack_id: str) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{owner_pid}-{stack_id}-*"))


def containers_of(stack_id: str | None = None) -> list[str]:
    from stack.engine import docker_problem

    if docker_problem() is not None:
        return []
    import docker

    client = docker.from_env()
    try:
        label = f"loadgate.stack={stack_id}" if stack_id else "loadgate.stack"
        return [c.name for c in client.containers.list(all=True, filters={"label": label})]
    finally:
        client.close()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
