"""What only the ``containers`` provider has to get right.

Cross-provider behaviour (SQL through PgBouncer, Redis, OSRM, Stripe, teardown
through the orchestrator) is tested once for both providers elsewhere. Here:
images are built once and cached by content, a missing engine is a one-line
error, labelled leftovers of a dead harness are reaped without Ryuk, pause and
resume, and the container-level details of start/stop (labels, user, stop
signal, removal of a container that died before it was ready).

Never exercises bridge networking: the machines this runs on have no Docker
bridge and must keep all traffic on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import docker
import psycopg
import pytest

from stack import engine as docker_engine
from stack.config import DB_NAME, StackConfig
from stack.errors import DockerUnavailable
from stack.ownership import (
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_STARTED,
    LABEL_SERVICE,
    LABEL_STACK,
    owner_alive,
    owner_labels,
)
from stack.ports import free_port
from stack.providers import containers, images
from stack.providers.base import RunningService
from stack.providers.containers import ContainersProvider
from stack.providers.images import context_digest
from stack.services import PGBOUNCER, POSTGRES, REDIS
from stack.spec import ServiceSpec
from tests.support import require_provider

pytestmark = pytest.mark.containers

CONFIG = StackConfig(provider="containers", network="host")


# --- helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    require_provider("containers")
    client = docker_engine.connect_engine()
    yield client
    client.close()


@pytest.fixture
def provider(
    engine: docker.DockerClient, request: pytest.FixtureRequest
) -> Iterator[ContainersProvider]:
    """A provider for one test; closing it removes whatever the test left."""
    stack_id = f"t{os.getpid()}{request.node.name[:20]}".replace("_", "-").lower()
    instance = ContainersProvider(CONFIG, stack_id)
    yield instance
    instance.close()
    assert not engine.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack_id}"})


def start_ready(
    provider: ContainersProvider,
    specs: list[ServiceSpec],
    timeout: float = 60.0,
) -> dict[str, RunningService]:
    """Start ``specs`` in order and poll each probe, as the orchestrator does."""
    running: dict[str, RunningService] = {}
    for spec in specs:
        ports = {name: free_port() for name in spec.port_names}
        service = provider.start(spec, ports, {d: running[d] for d in spec.depends_on})
        running[spec.name] = service
        wait_ready(provider, service, timeout)
    return running


def wait_ready(provider: ContainersProvider, service: RunningService, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = provider.exit_code(service)
        assert code is None, f"{service.name} exited {code}: {provider.log_tail(service)}"
        try:
            service.spec.probe(service.url)
        except Exception as exc:
            assert time.monotonic() < deadline, f"{service.name} not ready: {exc}"
            time.sleep(0.05)
            continue
        service.ready_after_s = time.monotonic() - service.started_at
        return


def dead_pid() -> int:
    """A pid that no process has (a just-reaped child's)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# --- no engine needed ---------------------------------------------------------------


def test_unreachable_engine_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/loadgate-test-docker.sock")
    provider = ContainersProvider(CONFIG, "dead-engine")
    with pytest.raises(DockerUnavailable) as caught:
        provider.prepare([REDIS])
    message = str(caught.value)
    assert "\n" not in message
    assert "unix:///nonexistent/loadgate-test-docker.sock" in message
    assert "scripts/docker-engine.sh" in message and "--provider local" in message
    provider.close()


def test_one_way_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quiet check and the connection agree: both go through stack.engine."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/loadgate-test-docker.sock")
    problem = docker_engine.docker_problem()
    assert problem is not None and "\n" not in problem
    with pytest.raises(DockerUnavailable):
        docker_engine.connect_engine(docker_engine.CONNECT_TIMEOUT_S)


def test_an_answering_engine_has_no_problem(engine: docker.DockerClient) -> None:
    assert docker_engine.docker_problem() is None
    client = docker_engine.connect_engine(docker_engine.CONNECT_TIMEOUT_S)
    try:
        assert client.ping()
    finally:
        client.close()


def test_missing_base_image_names_the_setup_script(engine: docker.DockerClient) -> None:
    provider = ContainersProvider(replace(CONFIG, base_image="loadgate-test/absent:none"), "nobase")
    try:
        with pytest.raises(DockerUnavailable) as caught:
            provider.prepare([REDIS])
    finally:
        provider.close()
    assert "\n" not in str(caught.value)
    assert "loadgate-test/absent:none" in str(caught.value)
    assert "scripts/docker-engine.sh" in str(caught.value)


def test_image_digest_follows_every_input(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM base\n")
    files: dict[str, Path | bytes] = {"Dockerfile": dockerfile}
    first = context_digest(files, {"BASE_IMAGE": "b"}, "sha256:1")
    assert context_digest(files, {"BASE_IMAGE": "b"}, "sha256:1") == first
    assert context_digest(files, {"BASE_IMAGE": "b"}, "sha256:2") != first
    assert context_digest(files, {"BASE_IMAGE": "c"}, "sha256:1") != first
    assert context_digest({**files, "extra": b"x"}, {"BASE_IMAGE": "b"}, "sha256:1") != first
    dockerfile.write_text("FROM base\nRUN true\n")
    assert context_digest(files, {"BASE_IMAGE": "b"}, "sha256:1") != first


def test_owner_liveness_from_labels() -> None:
    mine = owner_labels("s")
    assert owner_alive(mine)
    assert not owner_alive({**mine, LABEL_OWNER_PID: str(dead_pid())})
    assert not owner_alive({**mine, LABEL_OWNER_PID: "not-a-pid"})
    # Same pid, other start time: the pid was reused, the owner is gone.
    assert not owner_alive({**mine, LABEL_OWNER_STARTED: "12.00"})
    # Another machine's container on a shared engine is not ours to judge.
    assert owner_alive({**mine, LABEL_OWNER_PID: str(dead_pid()), LABEL_OWNER_HOST: "elsewhere"})


# --- images -------------------------------------------------------------------------


def test_images_are_built_once_and_cached(
    provider: ContainersProvider, engine: docker.DockerClient
) -> None:
    provider.prepare([POSTGRES, PGBOUNCER, REDIS])
    first = dict(provider.images)
    assert set(first) == {"postgres", "pgbouncer", "redis"}
    ids = {image: engine.images.get(tag).id for image, tag in first.items()}

    again = ContainersProvider(CONFIG, provider.stack_id + "-2")
    messages: list[str] = []
    again.progress = messages.append
    try:
        again.prepare([POSTGRES, PGBOUNCER, REDIS])
        assert again.images == first
        assert {image: engine.images.get(tag).id for image, tag in again.images.items()} == ids
        assert not [m for m in messages if "building" in m], messages
    finally:
        again.close()


def test_changed_context_gives_a_new_image(
    provider: ContainersProvider,
    engine: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_dir = tmp_path / "tiny"
    image_dir.mkdir()
    (image_dir / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY hello.txt /hello.txt\n"
    )
    (image_dir / "hello.txt").write_text("one\n")
    monkeypatch.setattr(images, "IMAGES_DIR", tmp_path)
    messages: list[str] = []
    provider.progress = messages.append
    built: list[str] = []
    try:
        built.append(provider.ensure_image("tiny"))
        image_id = engine.images.get(built[0]).id
        assert engine.images.get(built[0]).labels["loadgate.image"] == "tiny"
        messages.clear()
        assert provider.ensure_image("tiny") == built[0]
        assert engine.images.get(built[0]).id == image_id
        assert messages == [f"image {built[0]}: cached"]

        (image_dir / "hello.txt").write_text("two\n")
        built.append(provider.ensure_image("tiny"))
        assert built[1] != built[0]
    finally:
        for tag in built:
            engine.images.remove(tag, force=True)


# --- running services ---------------------------------------------------------------


def test_postgres_pgbouncer_redis_start_and_stop(
    provider: ContainersProvider, engine: docker.DockerClient
) -> None:
    provider.prepare([POSTGRES, PGBOUNCER, REDIS])
    running = start_ready(provider, [POSTGRES, PGBOUNCER, REDIS])

    with psycopg.connect(running["pgbouncer"].url, prepare_threshold=None) as conn:
        row = conn.execute("SELECT current_database(), current_setting('server_encoding')")
        assert row.fetchone() == (DB_NAME, "UTF8")

    postgres = engine.containers.get(running["postgres"].container_id)
    assert postgres.labels[LABEL_STACK] == provider.stack_id
    assert postgres.labels[LABEL_SERVICE] == "postgres"
    assert postgres.labels[LABEL_OWNER_PID] == str(os.getpid())
    assert postgres.attrs["Config"]["User"] == "postgres"
    assert postgres.attrs["Config"]["StopSignal"] == "SIGINT"
    assert postgres.attrs["HostConfig"]["NetworkMode"] == "host"
    assert all(s.host == "127.0.0.1" and s.peer_host == "127.0.0.1" for s in running.values())

    for service in reversed(running.values()):
        provider.stop(service)
        provider.stop(service)  # idempotent
        assert provider.exit_code(service) is not None
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(service.container_id)
    # A clean, fast shutdown (SIGINT), not a kill after the timeout.
    assert provider.exit_code(running["postgres"]) == 0


def test_container_that_dies_before_ready_is_removed_by_stop(
    provider: ContainersProvider, engine: docker.DockerClient
) -> None:
    broken = replace(REDIS, name="broken", command=lambda ctx: "echo boom >&2; exit 3")
    provider.prepare([broken])
    service = provider.start(broken, {"main": free_port()}, {})
    deadline = time.monotonic() + 30
    while provider.exit_code(service) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert provider.exit_code(service) == 3
    assert "boom" in provider.log_tail(service)
    provider.stop(service)
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(service.container_id)
    assert provider.log_tail(service) == ["boom"]  # still there for the error report
    assert provider.exit_code(service) == 3


def test_pause_and_resume(provider: ContainersProvider, engine: docker.DockerClient) -> None:
    provider.prepare([REDIS])
    redis = start_ready(provider, [REDIS])["redis"]
    provider.pause(redis)
    assert engine.containers.get(redis.container_id).status == "paused"
    assert provider.exit_code(redis) is None
    with pytest.raises(Exception):  # noqa: B017 - any client error: it does not answer
        REDIS.probe(redis.url)
    provider.resume(redis)
    assert engine.containers.get(redis.container_id).status == "running"
    REDIS.probe(redis.url)
    provider.pause(redis)
    provider.stop(redis)  # a paused service still stops
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(redis.container_id)


def test_close_removes_temp_dirs_and_stray_containers(
    provider: ContainersProvider, engine: docker.DockerClient
) -> None:
    provider.prepare([REDIS])
    redis = start_ready(provider, [REDIS])["redis"]
    root = provider._root
    assert root is not None and root.is_dir()
    provider.close()  # without stop(): close is the safety net
    assert not root.exists()
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(redis.container_id)


# --- leftovers of a SIGKILLed harness -----------------------------------------------


def test_reap_leftovers_removes_only_dead_owners_containers(
    engine: docker.DockerClient,
) -> None:
    base = StackConfig().base_image
    stack_id = f"reap-{os.getpid()}"
    orphan_labels = {
        **owner_labels(stack_id),
        LABEL_SERVICE: "sleeper",
        LABEL_OWNER_PID: str(dead_pid()),
    }
    alive_labels = {**owner_labels(stack_id), LABEL_SERVICE: "alive"}
    common = {"command": ["sleep", "300"], "detach": True, "network_mode": "none", "init": True}
    orphan = engine.containers.run(base, labels=orphan_labels, **common)
    alive = engine.containers.run(base, labels=alive_labels, **common)
    try:
        reaped = ContainersProvider.reap_leftovers()
        assert any(orphan.name in item for item in reaped), reaped
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(orphan.id)
        assert engine.containers.get(alive.id).status == "running"
        assert not any(alive.name in item for item in reaped)
    finally:
        for container in (orphan, alive):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_reap_leftovers_removes_dead_owners_temp_dirs() -> None:
    leftover = Path(tempfile.mkdtemp(prefix=f"{containers.TEMP_PREFIX}{dead_pid()}-x-"))
    (leftover / "postgres-1").mkdir()
    mine = Path(tempfile.mkdtemp(prefix=f"{containers.TEMP_PREFIX}{os.getpid()}-y-"))
    try:
        reaped = ContainersProvider.reap_leftovers()
        assert f"temp dir {leftover}" in reaped
        assert not leftover.exists()
        assert mine.is_dir()
    finally:
        mine.rmdir()


def test_auto_network_is_host_without_a_bridge(engine: docker.DockerClient) -> None:
    if docker_engine.has_bridge_network(engine):
        pytest.skip("this engine has a bridge network; bridge mode is not exercised here")
    provider = ContainersProvider(replace(CONFIG, network="auto"), f"auto-{os.getpid()}")
    try:
        assert provider._resolve_network() == "host"
    finally:
        provider.close()


def test_bridge_mode_definition_without_running_it(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """Bridge mode's container definition, checked on paper: nothing is created.

    (Bridge networking must never be exercised here; the network object is a
    stand-in that only carries a name, and no container is started.)
    """
    provider = ContainersProvider(replace(CONFIG, network="bridge"), "paper")
    provider.images = {"pgbouncer": "loadgate/pgbouncer:paper"}
    provider.network_mode = "bridge"
    provider._network = SimpleNamespace(name="loadgate-paper")  # type: ignore[assignment]
    provider._root = tmp_path
    postgres = RunningService(
        spec=POSTGRES,
        host="127.0.0.1",
        ports={"main": 40001},
        url="",
        peer_host="postgres",
        peer_ports={"main": 5432},
        handle=None,
    )
    container, inside = provider.define(PGBOUNCER, {"main": 40002}, {"postgres": postgres})

    assert inside == {"main": 6432}
    assert container.ports == {"6432/tcp": ("127.0.0.1", 40002)}
    assert container._network is provider._network
    assert container._network_aliases == ["pgbouncer"]
    assert "network" not in container._kwargs and "network_mode" not in container._kwargs
    config_dir = next(host for host, mount in container.volumes.items() if mount["mode"] == "ro")
    ini = (Path(config_dir) / "pgbouncer.ini").read_text()
    assert "host=postgres port=5432" in ini
    assert "listen_addr = 0.0.0.0" in ini and "listen_port = 6432" in ini
    assert not engine.networks.list(names=["loadgate-paper"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a CPU split needs 2 CPUs")
def test_cpuset_isolation_pins_the_container_and_its_later_backends(
    engine: docker.DockerClient, request: pytest.FixtureRequest
) -> None:
    """The stack's side of the split reaches the engine (``--cpuset-cpus``), and a Postgres
    backend forked inside the container afterwards runs on the stack's CPUs only."""
    import psutil

    from stack.isolation import CpuSplit, Isolation, IsolationPlan

    cpus = sorted(os.sched_getaffinity(0))
    plan = IsolationPlan("cpuset", "cpuset", CpuSplit((cpus[0],), tuple(cpus[1:])))
    isolated = Isolation(plan, "ctest")
    stack_id = f"t{os.getpid()}cpuset"
    provider = ContainersProvider(replace(CONFIG, placement=isolated.stack), stack_id)
    try:
        provider.prepare([POSTGRES])
        running = start_ready(provider, [POSTGRES])
        container = engine.containers.get(running["postgres"].container_id)
        assert container.attrs["HostConfig"]["CpusetCpus"] == ",".join(map(str, cpus[1:]))
        with psycopg.connect(running["postgres"].url) as conn:
            # pg_backend_pid() is the pid inside the container: find the host's by age.
            conn.execute("select 1")
            top = psutil.Process(int(container.attrs["State"]["Pid"]))
            newest = max(top.children(recursive=True), key=lambda p: p.create_time())
            assert sorted(newest.cpu_affinity()) == cpus[1:]
    finally:
        provider.close()
        isolated.close()
    assert not engine.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack_id}"})
