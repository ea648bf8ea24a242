"""The one way loadgate reaches a Docker engine.

Every Docker client in the harness (the containers provider, the reaper, the
container samplers, the tests) comes from :func:`connect_engine`, so all of
them honour the same settings: ``DOCKER_HOST``, docker contexts and
``~/.testcontainers.properties`` (through testcontainers' own client, as the
containers themselves do). :func:`docker_problem` asks the same question
quietly, for code that only needs to know whether an engine answers.

Also the testcontainers settings this harness needs (no Ryuk offline,
services on 127.0.0.1), applied before any container or network object is
made.

``docker`` and ``testcontainers`` are imported lazily: the local provider and
every command that never touches an engine do not pay for them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from stack.errors import DockerUnavailable

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

PROBE_TIMEOUT_S = 3
"""How long "does an engine answer?" may take (every stack start asks)."""
CONNECT_TIMEOUT_S = 5
API_TIMEOUT_S = 600
"""Long enough for a silent RUN step (pip, apt) during an image build."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line, for ``error:`` messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def engine_address() -> str:
    """Where the engine is expected, as error messages name it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def use_testcontainers_defaults() -> None:
    """testcontainers settings for this harness; idempotent, kept if the user set them.

    Ryuk (testcontainers' reaper) is an image that cannot be pulled offline;
    our own labels and :mod:`stack.ownership` do its job. Under host
    networking the "gateway IP" testcontainers would guess inside a container
    is empty: the services are on 127.0.0.1 (also where bridge mode
    publishes them).
    """
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = True
    if not testcontainers_config.tc_host_override:
        testcontainers_config.tc_host_override = "127.0.0.1"
    if testcontainers_config.connection_mode_override is None:
        testcontainers_config.connection_mode_override = ConnectionMode.docker_host


def client_kwargs() -> dict[str, Any]:
    """``docker_client_kw`` for testcontainers objects (containers, networks)."""
    return {"timeout": API_TIMEOUT_S}


def _pinged_client(timeout: float) -> docker.DockerClient:
    """A client that has answered a ping; raises whatever the engine raised."""
    use_testcontainers_defaults()
    from testcontainers.core.docker_client import DockerClient

    client = DockerClient(timeout=timeout).client
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


def connect_engine(timeout: float = API_TIMEOUT_S) -> docker.DockerClient:
    """A docker-py client that has answered a ping, or :class:`DockerUnavailable`.

    The caller closes it.
    """
    try:
        return _pinged_client(timeout)
    except Exception as exc:
        raise DockerUnavailable(
            f"no Docker engine answers at {engine_address()} ({one_line(exc)}): start dockerd "
            "(as root: bash scripts/docker-engine.sh) or use --provider local"
        ) from None


def docker_problem(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why no Docker engine can be used, or ``None`` when one answers."""
    try:
        _pinged_client(timeout).close()
    except ImportError:  # pragma: no cover - docker and testcontainers are dependencies
        return "the docker or testcontainers Python package is not installed"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return None


def has_bridge_network(client: docker.DockerClient) -> bool:
    """Whether the engine has Docker's default ``bridge`` network."""
    return any(n.name == "bridge" for n in client.networks.list(names=["bridge"]))


def remove_container(container: Container) -> None:
    """Force-remove a container and its anonymous volumes; fine if already gone."""
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise
