"""What a stack could leave behind, so tests can assert it left nothing."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import psutil

from stack.engine import connect_engine, docker_problem
from stack.ownership import LABEL_STACK, STACK_ENV
from stack.providers import containers, local


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
    """Either provider's temp trees of one stack."""
    root = Path(tempfile.gettempdir())
    prefixes = (local.TEMP_PREFIX, containers.TEMP_PREFIX)
    return [path for p in prefixes for path in root.glob(f"{p}{owner_pid}-{stack_id}-*")]


def containers_of(stack_id: str | None = None) -> list[str]:
    if docker_problem() is not None:
        return []
    client = connect_engine()
    try:
        label = f"{LABEL_STACK}={stack_id}" if stack_id else LABEL_STACK
        return [c.name for c in client.containers.list(all=True, filters={"label": label})]
    finally:
        client.close()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
