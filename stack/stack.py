"""The orchestrator: bring a stack up in dependency order, ready, and down.

``Stack`` owns the lifecycle guarantees so providers don't each re-implement
them: services start in dependency waves, each wave is polled with the
services' own readiness probes, a service that exits or never gets ready
fails the start with its last log lines, and *any* failure or interruption
(exception, Ctrl-C, SIGTERM turned into :class:`Terminated`) stops
everything already started, in reverse order, before the error propagates.

Usage::

    with Stack(StackConfig(provider="local")) as stack:
        dsn = stack.url("pgbouncer")
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from stack.config import StackConfig
from stack.errors import ServiceNotReady, StackError, UnknownService
from stack.ports import free_port, require_free
from stack.providers import choice
from stack.providers.base import Provider, RunningService
from stack.services import SERVICES, marketplace_needs
from stack.spec import ServiceSpec

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    """What ``stack status`` shows for one service."""

    name: str
    state: str
    url: str
    ready_after_s: float | None
    pid: int | None = None
    container_id: str | None = None


def resolve_services(config: StackConfig) -> list[ServiceSpec]:
    """The services to start: the asked ones plus their dependencies."""
    if config.services is None:
        wanted = [s.name for s in SERVICES.values() if not s.optional]
        if config.with_replica:
            wanted.append("replica")
    else:
        wanted = list(config.services)
    if config.profile is not None:
        wanted += [name for name in marketplace_needs(config.profile) if name not in wanted]
    unknown = [name for name in wanted if name not in SERVICES]
    if unknown:
        raise UnknownService(f"unknown service {unknown[0]!r}: choose from {', '.join(SERVICES)}")
    chosen: dict[str, ServiceSpec] = {}

    def add(name: str) -> None:
        spec = SERVICES[name]
        for dependency in spec.depends_on:
            add(dependency)
        chosen.setdefault(name, spec)

    for name in wanted:
        add(name)
    return list(chosen.values())


def dependency_waves(specs: list[ServiceSpec]) -> list[list[ServiceSpec]]:
    """Group services so each wave depends only on earlier waves."""
    remaining = {s.name: s for s in specs}
    present = set(remaining)
    done: set[str] = set()
    waves = []
    while remaining:
        wave = [
            s
            for s in remaining.values()
            if set(s.depends_on) <= done and (set(s.after) & present) <= done
        ]
        if not wave:
            raise StackError(f"dependency cycle among services: {', '.join(remaining)}")
        waves.append(wave)
        for spec in wave:
            done.add(spec.name)
            del remaining[spec.name]
    return waves


class Stack:
    """One running Blue Harvests stack; a context manager."""

    def __init__(self, config: StackConfig | None = None, progress: Progress | None = None):
        self.config = config or StackConfig()
        self.progress: Progress = progress or (lambda message: None)
        self.stack_id = uuid.uuid4().hex[:12]
        self.specs = resolve_services(self.config)
        self.provider: Provider | None = None
        self.services: dict[str, RunningService] = {}
        self.started_at: float | None = None
        self.ready_after_s: float | None = None

    # --- lifecycle --------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every service and wait until all are ready, or leave nothing."""
        self.started_at = time.monotonic()
        self._check_fixed_ports()
        try:
            self.provider = choice.make_provider(self.config, self.stack_id, self.progress)
            self.progress(f"provider: {self.provider.name}")
            self.provider.prepare(self.specs)
            for wave in dependency_waves(self.specs):
                for spec in wave:
                    self._start_one(spec)
                self._wait_ready(wave)
        except BaseException:
            self.stop()
            raise
        self.ready_after_s = time.monotonic() - self.started_at

    def stop(self) -> None:
        """Stop every started service in reverse order; safe to call twice."""
        if self.provider is None:
            return
        provider, self.provider = self.provider, None
        try:
            for service in reversed(list(self.services.values())):
                self.progress(f"stopping {service.name}")
                try:
                    provider.stop(service)
                except Exception as exc:  # keep stopping the others
                    self.progress(f"could not stop {service.name}: {exc}")
        finally:
            provider.close()

    # --- queries ----------------------------------------------------------------

    def url(self, name: str) -> str:
        """The client URL/DSN of a running service."""
        try:
            return self.services[name].url
        except KeyError:
            raise UnknownService(
                f"service {name!r} is not part of this stack: it has "
                f"{', '.join(self.services) or 'nothing running'}"
            ) from None

    def status(self) -> list[ServiceStatus]:
        provider = self.provider
        result = []
        for service in self.services.values():
            alive = provider is not None and provider.exit_code(service) is None
            result.append(
                ServiceStatus(
                    name=service.name,
                    state="ready" if alive else "stopped",
                    url=service.url,
                    ready_after_s=service.ready_after_s,
                    pid=service.pid,
                    container_id=service.container_id,
                )
            )
        return result

    def log_tail(self, name: str, lines: int = 20) -> list[str]:
        if self.provider is None:
            return []
        return self.provider.log_tail(self.services[name], lines)

    # --- internals --------------------------------------------------------------

    def _check_fixed_ports(self) -> None:
        for name, port in self.config.ports.items():
            if name not in SERVICES:
                raise UnknownService(
                    f"--port names unknown service {name!r}: choose from {', '.join(SERVICES)}"
                )
            require_free(port, name)

    def _allocate_ports(self, spec: ServiceSpec) -> dict[str, int]:
        taken = {p for s in self.services.values() for p in s.ports.values()}
        taken |= set(self.config.ports.values())
        ports = {}
        for port_name in spec.port_names:
            if port_name == "main" and spec.name in self.config.ports:
                ports[port_name] = self.config.ports[spec.name]
            else:
                ports[port_name] = free_port(exclude=taken)
                taken.add(ports[port_name])
        return ports

    def _start_one(self, spec: ServiceSpec) -> None:
        assert self.provider is not None
        self.progress(f"starting {spec.name}")
        peers = {
            name: self.services[name]
            for name in (*spec.depends_on, *spec.after)
            if name in self.services
        }
        service = self.provider.start(spec, self._allocate_ports(spec), peers)
        self.services[spec.name] = service

    def _wait_ready(self, wave: list[ServiceSpec]) -> None:
        """Poll the wave's probes together until all pass; fail fast on exit."""
        assert self.provider is not None
        pending = {spec.name: self.services[spec.name] for spec in wave}
        last_error: dict[str, str] = {}
        while pending:
            for name, service in list(pending.items()):
                self._check_alive(service)
                try:
                    service.spec.probe(service.url)
                except Exception as exc:
                    first_line = (str(exc).strip().splitlines() or [""])[0]
                    last_error[name] = f"{type(exc).__name__}: {first_line}".strip(": ")
                    if time.monotonic() - service.started_at > self._timeout(service.spec):
                        raise self._not_ready(service, last_error[name]) from None
                    continue
                service.ready_after_s = time.monotonic() - service.started_at
                self.progress(f"{name} ready in {service.ready_after_s:.2f} s")
                del pending[name]
            if pending:
                time.sleep(0.05)

    def _timeout(self, spec: ServiceSpec) -> float:
        return self.config.ready_timeout or spec.ready_timeout

    def _check_alive(self, service: RunningService) -> None:
        assert self.provider is not None
        code = self.provider.exit_code(service)
        if code is not None:
            tail = self.provider.log_tail(service)
            last = tail[-1] if tail else "no output"
            raise ServiceNotReady(
                f"{service.name} exited with status {code} before becoming ready "
                f"(last log line: {last})",
                tail,
            )

    def _not_ready(self, service: RunningService, reason: str) -> ServiceNotReady:
        assert self.provider is not None
        tail = self.provider.log_tail(service)
        timeout = self._timeout(service.spec)
        return ServiceNotReady(
            f"{service.name} not ready after {timeout:g} s ({reason}); see its last log lines "
            "below, or raise the limit with --ready-timeout",
            tail,
        )
