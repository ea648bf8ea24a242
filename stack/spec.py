"""How a service of the stack is described: once, for every provider.

A :class:`ServiceSpec` says what a service is (its name, the image it is built
from, what it depends on, which ports it listens on), how to start it (one
shell command and the config files it reads, rendered from a
:class:`ServiceContext`), how to tell it is ready (a probe run from the host),
and how clients reach it (a URL or DSN). Providers (``local``,
``containers``) only decide *where* the command runs; they never special-case
a service. That is what keeps the two providers honest with each other.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack.config import StackConfig


@dataclass(frozen=True)
class Address:
    """Where one listening port of a service can be reached."""

    host: str
    port: int


@dataclass(frozen=True)
class ServiceContext:
    """Everything a service's command and files are rendered from.

    Paths are as the *service* sees them: on the host for ``local``, inside the
    container for ``containers``. ``peers`` holds how this service reaches the
    services it depends on, which is not always how the host reaches them
    (bridge networking).
    """

    name: str
    config: StackConfig
    ports: Mapping[str, int]
    """Ports this service listens on, by port name (e.g. ``{"main": 5432}``)."""
    peers: Mapping[str, Address]
    """Main address of each dependency, as seen from this service."""
    data_dir: Path
    """An empty, writable directory owned by the user the service runs as."""
    config_dir: Path
    """Directory holding the files of :attr:`ServiceSpec.files` (read-only)."""
    pg_bin: Path
    """Directory of the PostgreSQL 15 server binaries (initdb, postgres, ...)."""
    osrm_bin: Path
    """Directory of the OSRM binaries (osrm-routed, ...)."""
    osrm_data: Path
    """Directory of the preprocessed OSRM map (see :mod:`stack.osrm_map`)."""
    stripe_mock: str
    """Command prefix that runs :mod:`stack.stripe_mock` (arguments follow)."""
    listen_host: str = "127.0.0.1"
    """Address the service binds to (``0.0.0.0`` inside a bridge container)."""
    python: str = sys.executable
    """A Python with loadgate's packages (runs the marketplace service)."""

    @property
    def port(self) -> int:
        """The service's main port."""
        return self.ports["main"]


Probe = Callable[[str], None]
"""A readiness probe: given the service's client URL, return if it is ready or
raise any exception saying why not. Probes run on the host, polled by the
provider until they pass or the service's ``ready_timeout`` runs out."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the stack, described once for every provider."""

    name: str
    image: str
    """Directory under ``stack/images/`` with the service's Dockerfile."""
    command: Callable[[ServiceContext], str]
    """A POSIX shell command that runs the service in the foreground."""
    url: Callable[[str, Mapping[str, int], StackConfig], str]
    """Client URL/DSN from (host, ports as reachable from the host, config)."""
    probe: Probe
    description: str = ""
    depends_on: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    """Optional dependencies: started first *if* they are part of the stack."""
    port_names: tuple[str, ...] = ("main",)
    default_ports: Mapping[str, int] = field(default_factory=dict)
    """Ports used inside a bridge-networked container (and as documentation)."""
    files: Callable[[ServiceContext], Mapping[str, str]] = lambda ctx: {}
    """Config files to write into ``config_dir`` before start, name -> text."""
    env: Callable[[ServiceContext], Mapping[str, str]] = lambda ctx: {}
    run_as_postgres: bool = False
    """PostgreSQL and PgBouncer refuse to run as root: run them as ``postgres``."""
    ready_timeout: float = 30.0
    stop_signal: int = signal.SIGTERM
    """Signal for a clean, quick stop (PostgreSQL: SIGINT = fast shutdown)."""
    optional: bool = False
    """Started only when asked for (e.g. the read replica)."""
