"""Picking free ports on 127.0.0.1 and checking fixed ones up front."""

from __future__ import annotations

import socket

from stack.errors import PortInUse

HOST = "127.0.0.1"


def free_port(exclude: set[int] | None = None) -> int:
    """A port nobody listens on now (the OS picks it; we avoid ones we handed out)."""
    exclude = exclude or set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def is_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def require_free(port: int, service: str) -> None:
    if not is_port_free(port):
        raise PortInUse(
            f"port {port} for {service} is already in use on {HOST}: stop what listens "
            f"there (ss -ltnp 'sport = :{port}') or choose another with --port {service}=PORT"
        )
