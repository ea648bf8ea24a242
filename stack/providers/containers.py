"""The ``containers`` provider: every service in its own Docker container.

testcontainers' style is one class per service (``PostgresContainer``,
``RedisContainer``, ...), each with its own image, its own idea of the start
command and its own wait strategy. Here the services are already described
once, for every provider, by :class:`stack.spec.ServiceSpec`; so this is one
generic provider over specs: it runs each spec's shell command in a plain
:class:`~testcontainers.core.container.DockerContainer` on the spec's image
(built by :mod:`stack.providers.images`). Readiness is the orchestrator's job
(it polls ``spec.probe`` from the host), which is why no testcontainers wait
strategy is used: under host networking their port-based waits cannot work.

The engine is reached through :mod:`stack.engine` only; Ryuk (which cannot be
pulled offline) is disabled there, so teardown never relies on it: containers
and networks carry :mod:`stack.ownership`'s labels, and
:meth:`ContainersProvider.reap_leftovers` removes those of dead owners.

Networking (``StackConfig.network``):

- ``host``: containers share the host's network stack; services listen on
  127.0.0.1 on the host ports the orchestrator chose and reach each other
  there. Needs no Docker bridge; all traffic stays on 127.0.0.1.
- ``bridge``: one user-defined network per stack; services listen on their
  ``spec.default_ports`` on 0.0.0.0 inside, published on 127.0.0.1 at the
  chosen host ports; peers are reached by container alias (the service name).
- ``auto``: ``bridge`` when the engine has a network named ``bridge``, else
  ``host``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from stack import engine, ownership
from stack.config import StackConfig
from stack.errors import DockerUnavailable, StackError
from stack.providers import container_def, images
from stack.providers.base import Peers, Ports, Provider, RunningService
from stack.providers.container_def import HOST
from stack.spec import ServiceSpec

engine.use_testcontainers_defaults()  # before any container or network object

TEMP_PREFIX = "loadgate-containers-"

LOG_KEEP_LINES = 200

Progress = Callable[[str], None]


class ContainersProvider(Provider):
    """Each service in a container built from the project's own Dockerfiles."""

    name = "containers"

    def __init__(self, config: StackConfig, stack_id: str) -> None:
        super().__init__(config, stack_id)
        self.progress: Progress = lambda message: None
        self.images: dict[str, str] = {}
        """Image name (``ServiceSpec.image``) -> tag built for it."""
        self.network_mode: str | None = None
        """``host`` or ``bridge`` once prepared."""
        self.osrm_data: Path | None = None
        self._client: docker.DockerClient | None = None
        self._network: Network | None = None
        self._root: Path | None = None
        self._last_logs: dict[str, list[str]] = {}
        self._exit_codes: dict[str, int] = {}

    # --- prerequisites ----------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            engine.connect_engine(engine.CONNECT_TIMEOUT_S).close()  # fail fast, one line
            self._client = engine.connect_engine(engine.API_TIMEOUT_S)
        return self._client

    def prepare(self, specs: list[ServiceSpec]) -> None:
        """Engine, base image, images, OSRM map, network: all before any start."""
        if self.config.service_host != HOST:
            raise StackError(
                f"service host {self.config.service_host}: only the local provider binds the "
                "service to another address; use --provider local"
            )
        base_id = self._base_image_id()
        for image in dict.fromkeys(spec.image for spec in specs):
            self.images[image] = self.ensure_image(image, base_id)
        if "osrm" in {spec.name for spec in specs}:
            from stack.osrm_map import ensure_map

            self.osrm_data = ensure_map(progress=self.progress)
        self.network_mode = self._resolve_network()
        self.progress(f"container network: {self.network_mode}")
        if self.network_mode == "bridge":
            self._network = self._create_network()
        # Services running as postgres read their config here.
        self._root = ownership.make_owned_temp_dir(TEMP_PREFIX, self.stack_id)

    def _base_image_id(self) -> str:
        return images.base_image_id(self.client, self.config.base_image)

    def ensure_image(self, image: str, base_id: str | None = None) -> str:
        """The tag of ``image`` built from its current inputs; builds only if missing."""
        return images.ensure_image(
            self.client,
            image,
            self.config.base_image,
            base_id or self._base_image_id(),
            TEMP_PREFIX,
            self.progress,
        )

    def _resolve_network(self) -> str:
        mode = self.config.network
        if mode == "auto":
            return "bridge" if engine.has_bridge_network(self.client) else "host"
        if mode not in ("host", "bridge"):
            raise StackError(f"unknown container network {mode!r}: use host, bridge or auto")
        return mode

    def _create_network(self) -> Network:
        """A per-stack user-defined network: services find each other by alias."""
        network = Network(
            docker_client_kw=engine.client_kwargs(),
            docker_network_kw={"driver": "bridge", "labels": ownership.owner_labels(self.stack_id)},
        )
        network.name = f"loadgate-{self.stack_id}"
        return network.create()

    # --- start --------------------------------------------------------------------

    def start(self, spec: ServiceSpec, host_ports: Ports, peers: Peers) -> RunningService:
        container, inside_ports = self.define(spec, host_ports, peers)
        self._run(container, spec)
        return RunningService(
            spec=spec,
            host=HOST,
            ports=dict(host_ports),
            url=spec.url(HOST, host_ports, self.config),
            peer_host=spec.name if self.network_mode == "bridge" else HOST,
            peer_ports=inside_ports,
            handle=container,
            container_id=container.get_container_id(),
        )

    def define(
        self,
        spec: ServiceSpec,
        host_ports: Ports,
        peers: Peers,
    ) -> tuple[DockerContainer, dict[str, int]]:
        """The container for ``spec`` (not started) and the ports it listens on inside.

        Split from :meth:`start` so the container definition, bridge mode's
        included, can be checked without running anything.
        """
        assert self._root is not None and self.network_mode, "prepare() must run before start()"
        bridge = self.network_mode == "bridge"
        assert self._network is not None or not bridge, "bridge mode needs the stack's network"
        inside_ports = container_def.inside_ports(spec, host_ports) if bridge else dict(host_ports)
        ctx = container_def.container_context(spec, self.config, inside_ports, peers, bridge)
        container = container_def.container_for(
            spec,
            ctx,
            image=self.images[spec.image],
            stack_id=self.stack_id,
            host_ports=host_ports,
            config_dir=container_def.write_config_dir(spec, ctx, self._root),
            osrm_data=self.osrm_data,
            network=self._network if bridge else None,
        )
        return container, inside_ports

    def _run(self, container: DockerContainer, spec: ServiceSpec) -> None:
        """Start without waiting; a container that failed to start is removed."""
        try:
            container.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop(force=True)
            raise StackError(
                f"could not start the {spec.name} container from {container.image}: "
                f"{engine.one_line(exc)}"
            ) from None

    # --- running services ---------------------------------------------------------

    def _get(self, service: RunningService) -> Container | None:
        try:
            return self.client.containers.get(service.container_id)
        except docker.errors.NotFound:
            return None

    def exit_code(self, service: RunningService) -> int | None:
        container = self._get(service)
        if container is None:
            return self._exit_codes.get(str(service.container_id), -1)
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def log_tail(self, service: RunningService, lines: int = 20) -> list[str]:
        container = self._get(service)
        if container is None:
            return self._last_logs.get(str(service.container_id), [])[-lines:]
        return self._tail(container, lines)

    @staticmethod
    def _tail(container: Container, lines: int) -> list[str]:
        with contextlib.suppress(docker.errors.APIError):
            raw = container.logs(stdout=True, stderr=True, tail=lines)
            return raw.decode(errors="replace").splitlines()[-lines:]
        return []

    def stop(self, service: RunningService, timeout: float = 10.0) -> None:
        """Stop with the spec's signal, then remove; fine if already stopped or gone."""
        container = self._get(service)
        if container is not None:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                if container.status == "paused":
                    container.unpause()
                if container.status in ("running", "paused", "restarting"):
                    container.stop(timeout=max(1, math.ceil(timeout)))
            self._remember(container)
            engine.remove_container(container)
        handle = service.handle
        if isinstance(handle, DockerContainer):
            with contextlib.suppress(Exception):
                handle.get_docker_client().client.close()

    def _remember(self, container: Container) -> None:
        """Keep logs and exit code: the orchestrator may ask after removal."""
        with contextlib.suppress(docker.errors.APIError):
            container.reload()
            self._exit_codes[str(container.id)] = int(container.attrs["State"]["ExitCode"])
        self._last_logs[str(container.id)] = self._tail(container, LOG_KEEP_LINES)

    def pause(self, service: RunningService) -> None:
        """Freeze every process of the service (``docker pause``); ports stay bound."""
        self._require(service).pause()

    def resume(self, service: RunningService) -> None:
        self._require(service).unpause()

    def _require(self, service: RunningService) -> Container:
        container = self._get(service)
        if container is None:
            raise StackError(f"the {service.name} container is gone")
        return container

    def close(self) -> None:
        """Remove what is left of this stack: containers, network, temp dirs."""
        if self._client is not None:
            for container in self._stack_containers():
                engine.remove_container(container)
            if self._network is not None:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    self._network.remove()
                self._network = None
            self._client.close()
            self._client = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _stack_containers(self) -> Iterator[Container]:
        with contextlib.suppress(docker.errors.APIError):
            yield from self.client.containers.list(
                all=True, filters={"label": f"{ownership.LABEL_STACK}={self.stack_id}"}
            )

    # --- leftovers of a SIGKILLed harness ---------------------------------------------

    @classmethod
    def reap_leftovers(cls) -> list[str]:
        """Remove containers, networks and temp dirs whose owner process is dead.

        This is what Ryuk would do, done at the next start instead of by a
        sidecar container (which cannot be pulled offline). No engine: nothing
        to reap there.
        """
        reaped = ownership.reap_temp_dirs(TEMP_PREFIX)
        try:
            client = engine.connect_engine(engine.CONNECT_TIMEOUT_S)
        except DockerUnavailable:
            return reaped
        try:
            reaped += ownership.reap_containers(client)
            reaped += ownership.reap_networks(client)
        finally:
            client.close()
        return reaped
