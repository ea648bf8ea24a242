"""The contract every stack provider fulfils.

The orchestrator (:mod:`stack.stack`) decides *what* runs and in which order,
polls readiness and guarantees teardown; a provider only knows *how* to run
one service somewhere (a child process, a container) and how to stop it.
Keeping the contract this small is what lets a test run the same assertions
against every provider.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack.config import StackConfig
from stack.spec import Address, ServiceContext, ServiceSpec


@dataclass
class RunningService:
    """One started service, as the rest of loadgate sees it."""

    spec: ServiceSpec
    host: str
    """Host clients on this machine use (always 127.0.0.1 here)."""
    ports: dict[str, int]
    """Listening ports as reachable from the host, by port name."""
    url: str
    """Client URL/DSN, e.g. ``postgresql://...`` or ``http://...``."""
    peer_host: str
    """How *other services* reach this one (differs under bridge networking)."""
    peer_ports: dict[str, int]
    handle: Any
    """Provider-specific: a ``subprocess.Popen`` or a container object."""
    log_path: Path | None = None
    pid: int | None = None
    container_id: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    ready_after_s: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.ports["main"]


Ports = Mapping[str, int]
"""Port numbers by port name (``main``, ...)."""
Peers = Mapping[str, RunningService]
"""Running services a service depends on, by service name."""


def peer_addresses(peers: Peers) -> dict[str, Address]:
    """How a service reaches each of its dependencies (their peer host and main port)."""
    return {name: Address(p.peer_host, p.peer_ports["main"]) for name, p in peers.items()}


def service_context(
    spec: ServiceSpec, config: StackConfig, ports: Ports, peers: Peers, **where: Any
) -> ServiceContext:
    """What ``spec``'s command and files render from; ``where`` holds the provider's
    side of it (data, config and binary paths, the bind address) as the service sees it."""
    return ServiceContext(
        name=spec.name, config=config, ports=dict(ports), peers=peer_addresses(peers), **where
    )


class Provider(ABC):
    """Runs services somewhere. One instance serves one stack."""

    name: str = "provider"

    def __init__(self, config: StackConfig, stack_id: str) -> None:
        self.config = config
        self.stack_id = stack_id

    @abstractmethod
    def prepare(self, specs: list[ServiceSpec]) -> None:
        """Check prerequisites and build what is needed before any start.

        Raises :class:`stack.errors.StackError` naming the fix (missing
        binary, unreachable engine, port in use) so nothing is started when
        the stack cannot come up.
        """

    @abstractmethod
    def start(self, spec: ServiceSpec, host_ports: Ports, peers: Peers) -> RunningService:
        """Start one service listening on ``host_ports``; do not wait for it."""

    @abstractmethod
    def exit_code(self, service: RunningService) -> int | None:
        """The exit status if the service has stopped running, else ``None``."""

    @abstractmethod
    def log_tail(self, service: RunningService, lines: int = 20) -> list[str]:
        """The last lines the service wrote (stdout and stderr)."""

    @abstractmethod
    def stop(self, service: RunningService, timeout: float = 10.0) -> None:
        """Stop the service and free what it held. Must be idempotent."""

    @abstractmethod
    def close(self) -> None:
        """Free what the provider itself holds (temp dirs, networks)."""

    # Pausing and restarting one service while the others run is part of the
    # design (fault injection); providers implement it when that work lands.
    def pause(self, service: RunningService) -> None:
        raise NotImplementedError(f"{self.name} provider cannot pause services yet")

    def resume(self, service: RunningService) -> None:
        raise NotImplementedError(f"{self.name} provider cannot resume services yet")

    @classmethod
    def reap_leftovers(cls) -> list[str]:
        """Remove what SIGKILLed earlier stacks left; returns what was removed."""
        return []
