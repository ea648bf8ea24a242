"""The ``containers`` provider: every service in its own Docker container.

testcontainers' style is one class per service (``PostgresContainer``,
``RedisContainer``, ...), each with its own image, its own idea of the start
command and its own wait strategy. Here the services are already described
once, for every provider, by :class:`stack.spec.ServiceSpec`; so this is one
generic provider over specs: it builds each spec's image from
``stack/images/<image>/Dockerfile`` and runs the spec's shell command in a
plain :class:`~testcontainers.core.container.DockerContainer`. Readiness is
the orchestrator's job (it polls ``spec.probe`` from the host), which is why no
testcontainers wait strategy is used: under host networking their port-based
waits cannot work at all.

Machines without a registry (CI here): the base image is made offline by
``scripts/docker-engine.sh`` (debootstrap + ``docker import``), images are
built with ``--network host`` so RUN steps reach the package mirrors, and Ryuk
(which cannot be pulled) is disabled. Teardown therefore never relies on Ryuk:
containers carry ``loadgate.*`` labels with the owner's pid, and
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
import hashlib
import importlib.metadata
import importlib.util
import math
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil
from docker.models.containers import Container
from testcontainers.core.config import ConnectionMode, testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.network import Network

from stack.config import StackConfig
from stack.errors import DockerUnavailable, StackError
from stack.providers.base import Provider, RunningService, peer_addresses
from stack.spec import ServiceContext, ServiceSpec

# Ryuk (testcontainers' reaper) is an image that cannot be pulled offline; our
# own labels + reap_leftovers() do its job. Under host networking the
# "gateway IP" testcontainers would guess inside a container is empty: the
# services are on 127.0.0.1 (also where bridge mode publishes them).
testcontainers_config.ryuk_disabled = True
if not testcontainers_config.tc_host_override:
    testcontainers_config.tc_host_override = "127.0.0.1"
if testcontainers_config.connection_mode_override is None:
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host

HOST = "127.0.0.1"
IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
STRIPE_MOCK_SOURCE = Path(__file__).resolve().parent.parent / "stripe_mock.py"
IMAGE_REPO = "loadgate"
TEMP_PREFIX = "loadgate-containers-"

# Paths as the services see them inside their containers (see the Dockerfiles).
PG_BIN = Path("/usr/lib/postgresql/15/bin")
OSRM_BIN = Path("/opt/osrm/bin")
OSRM_DATA = Path("/var/lib/loadgate/osrm")
DATA_DIR = Path("/var/lib/loadgate/data")
CONFIG_DIR = Path("/etc/loadgate")
STRIPE_MOCK = "/opt/venv/bin/python /opt/loadgate/stripe_mock.py"

LABEL_STACK = "loadgate.stack"
LABEL_SERVICE = "loadgate.service"
LABEL_OWNER_PID = "loadgate.owner-pid"
LABEL_OWNER_STARTED = "loadgate.owner-started"
"""Owner process start time: a reused pid does not keep leftovers alive."""
LABEL_OWNER_HOST = "loadgate.owner-host"
"""Only the machine that started a container judges whether its owner lives."""
LABEL_IMAGE = "loadgate.image"

CONNECT_TIMEOUT_S = 5
API_TIMEOUT_S = 600
"""Long enough for a silent RUN step (pip, apt) during an image build."""
SHM_SIZE = "512m"
"""PostgreSQL's parallel queries use /dev/shm; Docker's 64 MB default is small."""
LOG_KEEP_LINES = 200

Progress = Callable[[str], None]


# --- engine -------------------------------------------------------------------------


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect_engine(timeout: int = API_TIMEOUT_S) -> docker.DockerClient:
    """A docker-py client that has answered a ping, or :class:`DockerUnavailable`.

    Goes through testcontainers' client so DOCKER_HOST, docker contexts and
    ``~/.testcontainers.properties`` are honoured the same way as for the
    containers themselves.
    """
    where = _engine_address()
    try:
        client = DockerClient(timeout=timeout).client
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(
            f"no Docker engine answers at {where} ({_one_line(exc)}): start dockerd "
            "(as root: bash scripts/docker-engine.sh) or use --provider local"
        ) from None
    return client


def has_bridge_network(client: docker.DockerClient) -> bool:
    """Whether the engine has Docker's default ``bridge`` network."""
    return any(n.name == "bridge" for n in client.networks.list(names=["bridge"]))


# --- owners (who started a container, and are they still alive) ---------------------


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


# --- images -------------------------------------------------------------------------


def osrm_package_bin() -> Path:
    """``osrm/bin`` of the installed osrm-bindings wheel (found without importing it)."""
    spec = importlib.util.find_spec("osrm")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "the osrm-bindings wheel is not installed (its binaries go into the osrm "
            "image): pip install osrm-bindings (Python >= 3.12)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin"


def host_ca_bundle() -> bytes:
    """The CA bundle this host trusts, for pip inside image builds.

    Where HTTPS goes through an intercepting proxy, the host trusts an extra
    CA that a freshly debootstrapped base image does not; empty when no
    bundle is found (pip then uses its own).
    """
    candidates = [
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def context_extras(image: str) -> dict[str, Path | bytes]:
    """Files an image needs beyond its own directory, by path in the build context.

    Kept out of ``stack/images`` so there is one copy of each: the OSRM
    binaries are the venv's (both providers run the same OSRM) and the Stripe
    mock is ``stack/stripe_mock.py`` itself.
    """
    if image == "osrm":
        return {"bin": osrm_package_bin()}
    if image == "stripe":
        return {"stripe_mock.py": STRIPE_MOCK_SOURCE, "build-ca-bundle.crt": host_ca_bundle()}
    if image == "marketplace":
        return {
            "marketplace": MARKETPLACE_SOURCE,
            "requirements.txt": marketplace_requirements(),
            "build-ca-bundle.crt": host_ca_bundle(),
        }
    return {}


MARKETPLACE_SOURCE = Path(__file__).resolve().parent.parent.parent / "marketplace"
MARKETPLACE_PYTHON = "/opt/venv/bin/python"
MARKETPLACE_PACKAGES = (
    "fastapi",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "redis",
    "arq",
    "purgatory",
    "PyJWT",
    "prometheus-client",
    "stripe",
    "httpx",
)


def marketplace_requirements() -> bytes:
    """The service's dependencies pinned to this venv's versions."""
    lines = []
    for package in MARKETPLACE_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            lines.append(f"{package}=={importlib.metadata.version(package)}")
    return ("\n".join(lines) + "\n").encode()


def build_args(image: str, base_image: str) -> dict[str, str]:
    """Build arguments; the Stripe mock pins the versions installed here."""
    args = {"BASE_IMAGE": base_image}
    if image == "stripe":
        for package, arg in (
            ("localstripe", "LOCALSTRIPE_VERSION"),
            ("aiohttp", "AIOHTTP_VERSION"),
        ):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                args[arg] = importlib.metadata.version(package)
    return args


def context_files(image: str) -> dict[str, Path | bytes]:
    """Every file of an image's build context: relative path -> source file or bytes."""
    image_dir = IMAGES_DIR / image
    if not (image_dir / "Dockerfile").is_file():
        raise StackError(f"no Dockerfile for image {image!r}: expected {image_dir}/Dockerfile")
    sources: dict[str, Path | bytes] = {}
    roots: list[tuple[str, Path | bytes]] = [("", image_dir), *context_extras(image).items()]
    for prefix, source in roots:
        if isinstance(source, bytes) or source.is_file():
            sources[prefix] = source
            continue
        for path in sorted(
            p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            relative = path.relative_to(source).as_posix()
            sources[f"{prefix}/{relative}" if prefix else relative] = path
    return sources


def context_digest(files: Mapping[str, Path | bytes], args: Mapping[str, str], base_id: str) -> str:
    """Hash of everything a build depends on: files (with exec bit), args, base image."""
    digest = hashlib.sha256(f"base={base_id}\n".encode())
    for name, value in sorted(args.items()):
        digest.update(f"arg {name}={value}\n".encode())
    for relative, source in sorted(files.items()):
        if isinstance(source, bytes):
            content, executable = source, False
        else:
            content, executable = source.read_bytes(), os.access(source, os.X_OK)
        digest.update(f"file {relative} {int(executable)} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def write_context(files: Mapping[str, Path | bytes], target: Path) -> None:
    for relative, source in files.items():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            destination.write_bytes(source)
        else:
            shutil.copy2(source, destination)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_step_output(line: str) -> bool:
    """A line a RUN step printed, not the builder's own bookkeeping."""
    bookkeeping = ("Step ", "---> ", "Removing intermediate container", "Running in ")
    return bool(line) and not line.startswith(bookkeeping)


def image_tag(image: str, digest: str) -> str:
    return f"{IMAGE_REPO}/{image}:{digest[:16]}"


# --- the provider -------------------------------------------------------------------


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
            connect_engine(CONNECT_TIMEOUT_S)  # fail fast, with the one-line error
            self._client = connect_engine(API_TIMEOUT_S)
        return self._client

    def prepare(self, specs: list[ServiceSpec]) -> None:
        """Engine, base image, images, OSRM map, network: all before any start."""
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
        self._root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{self.stack_id}-"))
        self._root.chmod(0o755)  # services running as postgres read their config here

    def _base_image_id(self) -> str:
        base = self.config.base_image
        try:
            return str(self.client.images.get(base).id)
        except docker.errors.ImageNotFound:
            raise DockerUnavailable(
                f"base image {base} is not in the Docker engine and cannot be pulled here: "
                "build it offline with scripts/docker-engine.sh (debootstrap + docker import) "
                "or docker pull/load it"
            ) from None

    def ensure_image(self, image: str, base_id: str | None = None) -> str:
        """The tag of ``image`` built from its current inputs; builds only if missing.

        The tag is a hash of the Dockerfile, the whole build context, the build
        args and the base image's id, so an unchanged image is never rebuilt
        and a changed input always is.
        """
        base_id = base_id or self._base_image_id()
        files = context_files(image)
        args = build_args(image, self.config.base_image)
        tag = image_tag(image, context_digest(files, args, base_id))
        with contextlib.suppress(docker.errors.ImageNotFound):
            self.client.images.get(tag)
            self.progress(f"image {tag}: cached")
            return tag
        self.progress(f"image {tag}: building")
        # Named like the stack's temp dirs: reaped if the harness is killed mid-build.
        build_prefix = f"{TEMP_PREFIX}{os.getpid()}-build-{image}-"
        with tempfile.TemporaryDirectory(prefix=build_prefix) as context:
            write_context(files, Path(context))
            self._build(image, Path(context), tag, args)
        self.progress(f"image {tag}: built")
        return tag

    def _build(self, image: str, context: Path, tag: str, args: Mapping[str, str]) -> None:
        """``docker build --network host``, streaming step lines to progress."""
        output: list[str] = []
        stream = self.client.api.build(
            path=str(context),
            tag=tag,
            buildargs=dict(args),
            network_mode="host",
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels={LABEL_IMAGE: image},
        )
        for chunk in stream:
            if "error" in chunk:
                last = next((line for line in reversed(output) if _is_step_output(line)), "")
                raise StackError(
                    f"building image {tag} failed: {' '.join(str(chunk['error']).split())}"
                    f"{f' (last output: {last})' if last else ''}; check that `docker build "
                    f"--network host` reaches the package mirrors, and {IMAGES_DIR / image}"
                )
            for line in _ANSI.sub("", str(chunk.get("stream", ""))).splitlines():
                output.append(line.strip())
                if line.startswith("Step "):
                    self.progress(f"image {tag}: {line.strip()[:120]}")

    def _resolve_network(self) -> str:
        mode = self.config.network
        if mode == "auto":
            return "bridge" if has_bridge_network(self.client) else "host"
        if mode not in ("host", "bridge"):
            raise StackError(f"unknown container network {mode!r}: use host, bridge or auto")
        return mode

    def _create_network(self) -> Network:
        """A per-stack user-defined network: services find each other by alias."""
        network = Network(
            docker_client_kw={"timeout": API_TIMEOUT_S},
            docker_network_kw={"driver": "bridge", "labels": owner_labels(self.stack_id)},
        )
        network.name = f"loadgate-{self.stack_id}"
        return network.create()

    # --- start --------------------------------------------------------------------

    def start(
        self,
        spec: ServiceSpec,
        host_ports: Mapping[str, int],
        peers: Mapping[str, RunningService],
    ) -> RunningService:
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
        host_ports: Mapping[str, int],
        peers: Mapping[str, RunningService],
    ) -> tuple[DockerContainer, dict[str, int]]:
        """The container for ``spec`` (not started) and the ports it listens on inside.

        Split from :meth:`start` so the container definition, bridge mode's
        included, can be checked without running anything.
        """
        assert self._root is not None and self.network_mode, "prepare() must run before start()"
        bridge = self.network_mode == "bridge"
        inside_ports = self._inside_ports(spec, host_ports) if bridge else dict(host_ports)
        ctx = self._context(spec, inside_ports, peers, bridge)
        return self._container(spec, ctx, spec.command(ctx), host_ports), inside_ports

    @staticmethod
    def _inside_ports(spec: ServiceSpec, host_ports: Mapping[str, int]) -> dict[str, int]:
        return {name: spec.default_ports.get(name, port) for name, port in host_ports.items()}

    def _context(
        self,
        spec: ServiceSpec,
        ports: Mapping[str, int],
        peers: Mapping[str, RunningService],
        bridge: bool,
    ) -> ServiceContext:
        return ServiceContext(
            name=spec.name,
            config=self.config,
            ports=dict(ports),
            peers=peer_addresses(peers),
            data_dir=DATA_DIR,
            config_dir=CONFIG_DIR,
            pg_bin=PG_BIN,
            osrm_bin=OSRM_BIN,
            osrm_data=OSRM_DATA,
            stripe_mock=STRIPE_MOCK,
            listen_host="0.0.0.0" if bridge else HOST,
            python=MARKETPLACE_PYTHON,
        )

    def _write_files(self, spec: ServiceSpec, ctx: ServiceContext) -> Path:
        """The service's config files in a fresh host dir, readable by any user."""
        assert self._root is not None
        config_dir = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self._root))
        config_dir.chmod(0o755)
        for file_name, text in spec.files(ctx).items():
            (config_dir / file_name).write_text(text)
            (config_dir / file_name).chmod(0o644)
        return config_dir

    def _container(
        self, spec: ServiceSpec, ctx: ServiceContext, command: str, host_ports: Mapping[str, int]
    ) -> DockerContainer:
        container = DockerContainer(
            self.images[spec.image],
            docker_client_kw={"timeout": API_TIMEOUT_S},
            command=["sh", "-c", command],
            env=dict(spec.env(ctx)),
            name=f"loadgate-{self.stack_id}-{spec.name}",
        )
        container.with_volume_mapping(self._write_files(spec, ctx), str(CONFIG_DIR), "ro")
        # Mount the map only where the service uses it (no per-service branches).
        if self.osrm_data is not None and str(OSRM_DATA) in command:
            container.with_volume_mapping(self.osrm_data, str(OSRM_DATA), "ro")
        kwargs: dict[str, Any] = {
            "labels": {**owner_labels(self.stack_id), LABEL_SERVICE: spec.name},
            # docker-init as PID 1 forwards the stop signal even while `sh -c`
            # has not yet exec'd the service (e.g. during initdb) and reaps zombies.
            "init": True,
            "stop_signal": signal.Signals(getattr(spec, "stop_signal", signal.SIGTERM)).name,
            "shm_size": SHM_SIZE,
        }
        if spec.run_as_postgres:
            kwargs["user"] = "postgres"
        if self.network_mode == "bridge":
            assert self._network is not None, "bridge mode needs the stack's network"
            container.with_network(self._network).with_network_aliases(spec.name)
            for port_name, host_port in host_ports.items():
                # docker-py accepts (ip, port): publish on loopback only.
                container.ports[f"{ctx.ports[port_name]}/tcp"] = (HOST, host_port)  # type: ignore[assignment]
        else:
            # `network`, not `network_mode`: testcontainers would otherwise guess
            # a network when it runs inside a container, and docker-py lets that
            # guess override network_mode.
            kwargs["network"] = "host"
        return container.with_kwargs(**kwargs)  # one call: with_kwargs replaces

    def _run(self, container: DockerContainer, spec: ServiceSpec) -> None:
        """Start without waiting; a container that failed to start is removed."""
        try:
            container.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop(force=True)
            raise StackError(
                f"could not start the {spec.name} container from {container.image}: "
                f"{_one_line(exc)}"
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
            self._remove(container)
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

    @staticmethod
    def _remove(container: Container) -> None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

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
                self._remove(container)
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
                all=True, filters={"label": f"{LABEL_STACK}={self.stack_id}"}
            )

    # --- leftovers of a SIGKILLed harness ---------------------------------------------

    @classmethod
    def reap_leftovers(cls) -> list[str]:
        """Remove containers, networks and temp dirs whose owner process is dead.

        This is what Ryuk would do, done at the next start instead of by a
        sidecar container (which cannot be pulled offline). No engine: nothing
        to reap there.
        """
        reaped = cls._reap_temp_dirs()
        try:
            client = connect_engine(CONNECT_TIMEOUT_S)
        except DockerUnavailable:
            return reaped
        try:
            reaped += cls._reap_containers(client)
            reaped += cls._reap_networks(client)
        finally:
            client.close()
        return reaped

    @classmethod
    def _reap_containers(cls, client: docker.DockerClient) -> list[str]:
        reaped = []
        for container in client.containers.list(all=True, filters={"label": LABEL_STACK}):
            labels = container.labels
            if owner_alive(labels):
                continue
            cls._remove(container)
            reaped.append(
                f"container {container.name} ({labels.get(LABEL_SERVICE, '?')} of stack "
                f"{labels.get(LABEL_STACK)}, owner pid {labels.get(LABEL_OWNER_PID, '?')})"
            )
        return reaped

    @staticmethod
    def _reap_networks(client: docker.DockerClient) -> list[str]:
        reaped = []
        for network in client.networks.list(filters={"label": LABEL_STACK}):
            if owner_alive(network.attrs.get("Labels") or {}):
                continue
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
                reaped.append(f"network {network.name}")
        return reaped

    @staticmethod
    def _reap_temp_dirs() -> list[str]:
        reaped = []
        pattern = re.compile(rf"^{TEMP_PREFIX}(\d+)-")
        for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
            match = pattern.match(path.name)
            if match and not psutil.pid_exists(int(match.group(1))):
                shutil.rmtree(path, ignore_errors=True)
                reaped.append(f"temp dir {path}")
        return reaped
