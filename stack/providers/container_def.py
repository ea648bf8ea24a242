"""How one service spec becomes one container definition (nothing is started here).

The paths the services see inside their images, the service's config files in
a host dir mounted read-only, the ownership labels, the stop signal and the
networking (host, or a per-stack bridge network with ports published on
127.0.0.1 only). Kept apart from the provider's lifecycle so a definition,
bridge mode's included, can be checked on paper.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from stack import engine, ownership
from stack.config import StackConfig
from stack.providers.base import Peers, Ports, service_context
from stack.spec import ServiceContext, ServiceSpec

HOST = "127.0.0.1"

# Paths as the services see them inside their containers (see the Dockerfiles).
PG_BIN = Path("/usr/lib/postgresql/15/bin")
OSRM_BIN = Path("/opt/osrm/bin")
OSRM_DATA = Path("/var/lib/loadgate/osrm")
DATA_DIR = Path("/var/lib/loadgate/data")
CONFIG_DIR = Path("/etc/loadgate")
STRIPE_MOCK = "/opt/venv/bin/python /opt/loadgate/stripe_mock.py"
MARKETPLACE_PYTHON = "/opt/venv/bin/python"

SHM_SIZE = "512m"
"""PostgreSQL's parallel queries use /dev/shm; Docker's 64 MB default is small."""


def inside_ports(spec: ServiceSpec, host_ports: Ports) -> dict[str, int]:
    """Bridge mode: each service listens on its usual ports inside its container."""
    return {name: spec.default_ports.get(name, port) for name, port in host_ports.items()}


def container_context(
    spec: ServiceSpec, config: StackConfig, ports: Ports, peers: Peers, bridge: bool
) -> ServiceContext:
    """What the spec's command and files see: the image's paths, ports, peers."""
    return service_context(
        spec,
        config,
        ports,
        peers,
        data_dir=DATA_DIR,
        config_dir=CONFIG_DIR,
        pg_bin=PG_BIN,
        osrm_bin=OSRM_BIN,
        osrm_data=OSRM_DATA,
        stripe_mock=STRIPE_MOCK,
        listen_host="0.0.0.0" if bridge else HOST,
        python=MARKETPLACE_PYTHON,
    )


def write_config_dir(spec: ServiceSpec, ctx: ServiceContext, root: Path) -> Path:
    """The service's config files in a fresh host dir under ``root``, readable by any user."""
    config_dir = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=root))
    config_dir.chmod(0o755)
    for file_name, text in spec.files(ctx).items():
        (config_dir / file_name).write_text(text)
        (config_dir / file_name).chmod(0o644)
    return config_dir


def container_for(
    spec: ServiceSpec,
    ctx: ServiceContext,
    *,
    image: str,
    stack_id: str,
    host_ports: Ports,
    config_dir: Path,
    osrm_data: Path | None,
    network: Network | None,
) -> DockerContainer:
    """The container running ``spec``; ``network`` is the stack's bridge, or None for host."""
    command = spec.command(ctx)
    container = DockerContainer(
        image,
        docker_client_kw=engine.client_kwargs(),
        command=["sh", "-c", command],
        env=dict(spec.env(ctx)),
        name=f"loadgate-{stack_id}-{spec.name}",
    )
    container.with_volume_mapping(config_dir, str(CONFIG_DIR), "ro")
    # Mount the map only where the service uses it (no per-service branches).
    if osrm_data is not None and str(OSRM_DATA) in command:
        container.with_volume_mapping(osrm_data, str(OSRM_DATA), "ro")
    kwargs: dict[str, Any] = {
        "labels": {**ownership.owner_labels(stack_id), ownership.LABEL_SERVICE: spec.name},
        # docker-init as PID 1 forwards the stop signal even while `sh -c`
        # has not yet exec'd the service (e.g. during initdb) and reaps zombies.
        "init": True,
        "stop_signal": signal.Signals(getattr(spec, "stop_signal", signal.SIGTERM)).name,
        "shm_size": SHM_SIZE,
    }
    if spec.run_as_postgres:
        kwargs["user"] = "postgres"
    if ctx.config.placement is not None:  # the stack's side of the CPU split
        kwargs.update(ctx.config.placement.container_kwargs())
    if network is not None:
        container.with_network(network).with_network_aliases(spec.name)
        for port_name, host_port in host_ports.items():
            # docker-py accepts (ip, port): publish on loopback only.
            container.ports[f"{ctx.ports[port_name]}/tcp"] = (HOST, host_port)  # type: ignore[assignment]
    else:
        # `network`, not `network_mode`: testcontainers would otherwise guess
        # a network when it runs inside a container, and docker-py lets that
        # guess override network_mode.
        kwargs["network"] = "host"
    return container.with_kwargs(**kwargs)  # one call: with_kwargs replaces
