"""Container logs are followed through the engine's log stream, not polled.

A real container (the offline base image) writes a numbered line every 0.1 s; the
streamer must copy every line once, in order, keep following it across a kill and a
restart (the containers provider's fault recovery restarts the same container), and
do so with one log request per container life instead of one per second.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from stack import engine as docker_engine
from stack.config import StackConfig
from stack.logs import LogStreamer
from stack.ownership import owner_labels
from tests.support import require_provider

pytestmark = pytest.mark.containers

TICKER = 'echo "boot $(date +%s%N)"; i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done'
WAIT_S = 60.0
"""Upper bound to wait for lines to arrive (a bound on a busy box, not a timing claim)."""


@pytest.fixture
def ticker() -> Iterator[tuple[docker.DockerClient, docker.models.containers.Container]]:
    require_provider("containers")
    client = docker_engine.connect_engine()
    container = client.containers.run(
        StackConfig().base_image,
        ["sh", "-c", TICKER],
        detach=True,
        network_mode="host",
        labels=owner_labels(f"tlogs{os.getpid()}"),
    )
    try:
        yield client, container
    finally:
        container.remove(force=True)
        client.close()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def lives(path: Path) -> list[list[int]]:
    """The tick numbers of each container life, split at its "boot" line."""
    found: list[list[int]] = []
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("boot "):
            found.append([])
        elif match := re.fullmatch(r"tick (\d+)", line):
            assert found, f"a tick before any boot line: {line!r}"
            found[-1].append(int(match[1]))
    return found


def test_a_container_is_followed_once_and_across_a_restart(ticker, tmp_path):
    client, container = ticker
    service = SimpleNamespace(name="ticker", log_path=None, container_id=container.id)
    stack = SimpleNamespace(services={"ticker": service}, provider=SimpleNamespace(client=client))
    streamer = LogStreamer(stack, tmp_path / "logs", interval_s=0.2)  # type: ignore[arg-type]
    log = streamer.path("ticker")
    streamer.start()
    try:
        wait_for(lambda: "ticker" in streamer._streams, "the follower's stream")
        requests: list[dict] = []
        api = streamer._engine().api
        real_logs = api.logs
        api.logs = lambda *a, **kw: requests.append(kw) or real_logs(*a, **kw)
        wait_for(lambda: len(lives(log)) == 1 and len(lives(log)[0]) >= 30, "30 ticks")
        # ~3 s of lines from one open stream: no request per second.
        assert requests == []

        container.kill()
        container.start()  # the same container, as the provider's fault recovery does
        wait_for(lambda: len(lives(log)) == 2 and len(lives(log)[1]) >= 10, "the restart")
        assert len(requests) >= 1 and all(kw["follow"] for kw in requests)
    finally:
        streamer.stop()
    assert not streamer._following("ticker")
    for ticks in lives(log):  # every line once, in order, none lost
        assert ticks == list(range(len(ticks)))
    assert not any(line[:4].isdigit() for line in log.read_text().splitlines())  # no stamps


def test_lines_written_before_start_are_copied_and_stop_takes_the_rest(ticker, tmp_path):
    """Whatever the container wrote before the streamer started is copied; after
    ``stop`` the file holds every line up to then, each once."""
    client, container = ticker
    wait_for(lambda: b"tick 2\n" in container.logs(), "lines before the streamer exists")
    service = SimpleNamespace(name="ticker", log_path=None, container_id=container.id)
    stack = SimpleNamespace(services={"ticker": service}, provider=SimpleNamespace(client=client))
    streamer = LogStreamer(stack, tmp_path / "logs")  # type: ignore[arg-type]
    streamer.start()
    wait_for(lambda: streamer._following("ticker"), "the follower to start")
    streamer.stop()
    container.kill()
    before_stop = lives(streamer.path("ticker"))
    assert len(before_stop) == 1 and before_stop[0][:3] == [0, 1, 2]
    assert before_stop[0] == list(range(len(before_stop[0])))
    assert streamer.tail("ticker", 1)[0].startswith("tick ")
