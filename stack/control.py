"""Stop, freeze and start again one service of a running stack (fault injection).

The stack's providers know how to start and stop services; a fault also needs to kill
one abruptly (SIGKILL, no clean shutdown: what a crash looks like), to start that same
service again on the same ports with the same data directory, to freeze it, and to kill
one of the marketplace's worker processes. Those operations live here, over the
provider's public surface, so the providers stay as they are:

- ``local``: the service is a process group (its own session): ``killpg`` and a new
  ``provider.start`` with the same spec, ports and peers (the data directory is reused;
  the service's log file is appended to).
- ``containers``: ``docker kill`` then ``docker start`` of the same container (same
  command, same network, same filesystem).

Both: pause/resume through the provider (SIGSTOP / ``docker pause``); a marketplace
worker is found among the service's host processes (containers share the host's pid
view here) as a ``multiprocessing`` child of uvicorn.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil

from stack.errors import StackError
from stack.providers.base import RunningService
from stack.stack import Stack

WORKER_MARK = "multiprocessing"
"""uvicorn starts its workers with multiprocessing's spawn: their command line says so."""


class ServiceControl:
    """Fault operations on the services of one :class:`Stack` (thread-safe enough: the
    fault scheduler is the only caller while the load runs)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._paused_worker: psutil.Process | None = None
        # A local service dies with the *thread* that started it (its parent-death
        # signal follows the forking thread), so services started again are forked from
        # this thread, which lives until close() -- after the stack is down.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="respawn")

    def close(self) -> None:
        """Call after the stack is down (the services started again die with it)."""
        self._spawner.shutdown(wait=False)

    # --- one service ------------------------------------------------------------------

    def _service(self, name: str) -> RunningService:
        try:
            return self.stack.services[name]
        except KeyError:
            raise StackError(f"service {name!r} is not part of this stack") from None

    @property
    def _provider(self) -> Any:
        if self.stack.provider is None:
            raise StackError("the stack is down")
        return self.stack.provider

    def _container(self, service: RunningService) -> Any:
        return self._provider.client.containers.get(service.container_id)

    def kill(self, name: str) -> str:
        """SIGKILL every process of the service: no shutdown, as in a crash."""
        service = self._service(name)
        if self._provider.name == "containers":
            self._container(service).kill()
            return f"docker kill {name}"
        process = service.handle
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
        return f"SIGKILL {name} (process group {process.pid})"

    def start_again(self, name: str) -> str:
        """Start a killed service again: same ports, same data, same command."""
        service = self._service(name)
        if self._provider.name == "containers":
            self._container(service).start()
            return f"docker start {name}"
        peers = {
            peer: self.stack.services[peer]
            for peer in (*service.spec.depends_on, *service.spec.after)
            if peer in self.stack.services
        }
        future = self._spawner.submit(self._provider.start, service.spec, service.ports, peers)
        fresh = future.result()
        self.stack.services[name] = fresh  # teardown stops the new process
        return f"{name} started again (pid {fresh.pid})"

    def pause(self, name: str) -> str:
        self._provider.pause(self._service(name))
        return f"{name} frozen"

    def resume(self, name: str) -> str:
        self._provider.resume(self._service(name))
        return f"{name} resumed"

    def answers(self, name: str) -> bool:
        """Whether the service passes its readiness probe now."""
        service = self._service(name)
        service.spec.probe(service.url)
        return True

    # --- one marketplace worker ---------------------------------------------------------

    def _root_pid(self) -> int:
        service = self._service("marketplace")
        if self._provider.name == "containers":
            return int(self._container(service).attrs["State"]["Pid"])
        return int(service.handle.pid)

    def workers(self) -> list[psutil.Process]:
        """The marketplace's worker processes, oldest first."""
        root = psutil.Process(self._root_pid())
        found = []
        for proc in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.cmdline())
                if WORKER_MARK in cmdline and "resource_tracker" not in cmdline:
                    found.append(proc)
        return sorted(found, key=lambda p: (p.create_time(), p.pid))

    def kill_worker(self) -> str:
        victims = self.workers()
        if not victims:
            raise StackError("no marketplace worker process found")
        victim = victims[0]
        before = {p.pid for p in victims}
        victim.send_signal(signal.SIGKILL)
        replaced = self._wait_replaced(before, len(victims))
        return f"SIGKILL worker {victim.pid}; {replaced}"

    def _wait_replaced(self, before: set[int], count: int, limit_s: float = 30.0) -> str:
        """Until a worker that was not there before runs beside the survivors. Not "any
        pid but the survivors": a SIGKILLed worker is still listed until the kernel has
        delivered the signal, and would pass for its own replacement."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            now = self.workers()
            new = [p.pid for p in now if p.pid not in before]
            if len(now) >= count and new:
                return f"uvicorn started worker {new[0]}"
            time.sleep(0.2)
        return f"no replacement worker within {limit_s:g} s"

    def pause_worker(self) -> str:
        victims = self.workers()
        if not victims:
            raise StackError("no marketplace worker process found")
        self._paused_worker = victims[0]
        self._paused_worker.suspend()
        return f"worker {self._paused_worker.pid} frozen"

    def resume_worker(self) -> str:
        worker, self._paused_worker = self._paused_worker, None
        if worker is None:
            return "no worker to resume"
        try:
            worker.resume()
        except psutil.NoSuchProcess:
            return f"worker {worker.pid} was replaced by uvicorn meanwhile"
        return f"worker {worker.pid} resumed"

    # --- the Stripe mock ---------------------------------------------------------------

    def stripe_config(self, changes: dict[str, float]) -> dict[str, float]:
        """Apply ``changes`` through the mock's control endpoint; returns the settings
        from before the change (so the fault can restore them)."""
        url = self._service("stripe").url
        with httpx.Client(base_url=url, timeout=5) as client:
            before = client.get("/_loadgate/config").raise_for_status().json()
            body = {k: (int(v) if k == "error_status" else v) for k, v in changes.items()}
            client.post("/_loadgate/config", json=body).raise_for_status()
        return before
