"""A trivial, fast HTTP/1.1 server on 127.0.0.1 for generator benchmarks.

Run: ``.venv/bin/python benchmarks/trivial_server.py --port 8089 [--processes 1]``

``benchmarks/bench_generator.py`` measures how many requests/s a load
*generator* produces per core, so the server must cost as little as
possible: a raw asyncio protocol (uvloop when installed) that answers every
request, any method and any path, with one fixed JSON body, keep-alive and
pipelining included, without an HTTP framework. The body is the one the
buyer flow needs to proceed (a product list, a subtotal above the market
minimum, an order id), so the same server serves every benchmark. With
``--processes N`` it forks N processes sharing the port through
``SO_REUSEPORT``. Request bodies must carry ``Content-Length`` (Locust's
clients and wrk do); chunked uploads are not supported.

It prints ``ready <port>`` on stdout once listening, so a parent can wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys
import time

BODY = json.dumps(
    {
        "products": [{"id": i} for i in range(1, 21)],
        "subtotal": 100,
        "order_id": 1,
    },
    separators=(",", ":"),
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
MAX_HEAD = 64 * 1024
"""A request head larger than this is not a benchmark client: drop the connection."""


class FixedResponse(asyncio.Protocol):
    """Answers each complete request head with :data:`RESPONSE`, skipping bodies."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.body_left = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answered = self._consume()
        if self.transport is None:
            return
        if answered:
            self.transport.write(RESPONSE * answered)
        if len(self.buffer) > MAX_HEAD:
            self.transport.close()

    def _consume(self) -> int:
        """Parse as many whole requests as the buffer holds; returns how many."""
        answered = 0
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                del self.buffer[:taken]
                self.body_left -= taken
                if self.body_left:
                    return answered
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return answered
            match = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            self.body_left = int(match.group(1)) if match else 0
            del self.buffer[: end + 4]
            answered += 1


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound socket with ``SO_REUSEPORT``, so several processes can share the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedResponse, sock=sock)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def run_one(sock: socket.socket) -> None:
    """Serve ``sock`` in this process until SIGTERM/SIGINT (uvloop if available)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    runner(serve(sock))


def fork_workers(host: str, port: int, processes: int) -> list[int]:
    """Children that each serve the shared port; the parent only supervises."""
    pids = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            try:
                run_one(listening_socket(host, port))
            finally:
                os._exit(0)
        pids.append(pid)
    return pids


def wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until a forked child accepts connections (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes <= 1:
        # Bound (and listening) before announcing readiness: the parent can connect at once.
        sock = listening_socket(args.host, args.port)
        print(f"ready {args.port}", flush=True)
        run_one(sock)
        return
    pids = fork_workers(args.host, args.port, args.processes)
    wait_listening(args.host, args.port)
    print(f"ready {args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(p, signal.SIGTERM) for p in pids])
    for pid in pids:
        os.waitpid(pid, 0)
    sys.exit(0)


if __name__ == "__main__":
    main()
