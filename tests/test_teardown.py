"""Teardown guarantee: Ctrl-C, SIGTERM, an exception, a readiness timeout and
a SIGKILLed harness all end with no process, port, temp dir or container."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from stack.config import StackConfig
from stack.errors import ServiceNotReady
from stack.stack import Stack
from tests.cli_helpers import run_cli, start_cli, wait_for_state
from tests.leftovers import containers_of, listening, processes_of, temp_dirs_of
from tests.support import PROVIDERS, require_provider

pytestmark = pytest.mark.services
SMALL = ["-s", "postgres", "-s", "redis"]


def assert_nothing_left(stack_id: str, owner_pid: int, ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_of(stack_id):
        time.sleep(0.1)
    assert processes_of(stack_id) == []
    assert temp_dirs_of(owner_pid, stack_id) == []
    assert containers_of(stack_id) == []
    assert [p for p in ports if listening(p)] == []


def _ports(state: dict) -> list[int]:
    return [int(s["url"].rsplit(":", 1)[1].split("/")[0]) for s in state["services"]]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_tears_everything_down(provider, sig, tmp_path):
    require_provider(provider)
    proc = start_cli(["stack", "up", "--provider", provider, *SMALL], tmp_path)
    state = wait_for_state(tmp_path, proc)
    assert all(listening(p) for p in _ports(state))
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    assert not (tmp_path / "stack.json").exists()
    assert_nothing_left(state["stack_id"], proc.pid, _ports(state))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_readiness_timeout_leaves_nothing(provider):
    require_provider(provider)
    # 50 ms is too short for initdb: the start must fail and clean up after itself.
    stack = Stack(
        StackConfig(provider=provider, services=("postgres", "redis"), ready_timeout=0.05)
    )
    with pytest.raises(ServiceNotReady) as info:
        stack.start()
    assert "not ready after 0.05 s" in str(info.value)
    ports = [s.port for s in stack.services.values()]
    assert_nothing_left(stack.stack_id, psutil.Process().pid, ports)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_exception_inside_the_stack_block_tears_down(provider):
    require_provider(provider)
    with (
        pytest.raises(RuntimeError, match="boom"),
        Stack(StackConfig(provider=provider, services=("redis",))) as stack,
    ):
        ports = [s.port for s in stack.services.values()]
        assert all(listening(p) for p in ports)
        raise RuntimeError("boom")
    assert_nothing_left(stack.stack_id, psutil.Process().pid, ports)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sigkilled_harness_is_cleaned_up(provider, tmp_path):
    require_provider(provider)
    proc = start_cli(["stack", "up", "--provider", provider, *SMALL], tmp_path)
    state = wait_for_state(tmp_path, proc)
    proc.kill()
    proc.wait(timeout=10)
    if provider == "local":
        # The kernel's parent-death signal ends the children with the harness.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and processes_of(state["stack_id"]):
            time.sleep(0.1)
        assert processes_of(state["stack_id"]) == []
    # The next loadgate start reaps whatever is left (temp dirs, containers).
    result = run_cli(["stack", "down"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state["stack_id"], proc.pid, _ports(state))


def test_detach_status_down(tmp_path):
    up = run_cli(["stack", "up", "--provider", "local", "--detach", "-s", "redis"], tmp_path)
    assert up.returncode == 0, up.stderr
    assert "redis" in up.stdout and "ready" in up.stdout
    status = run_cli(["stack", "status", "--json"], tmp_path)
    assert status.returncode == 0, status.stderr
    import json

    data = json.loads(status.stdout)
    assert data["up"] and data["healthy"]
    assert [s["name"] for s in data["services"]] == ["redis"]
    assert data["services"][0]["url"].startswith("redis://127.0.0.1:")
    second = run_cli(["stack", "up", "--provider", "local", "-s", "redis"], tmp_path)
    assert second.returncode == 2 and "already up" in second.stderr
    down = run_cli(["stack", "down"], tmp_path)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(data["stack_id"], data["supervisor_pid"], _ports(data))
    after = run_cli(["stack", "status", "--json"], tmp_path)
    assert after.returncode == 1 and '"up": false' in after.stdout


def test_service_that_exits_shows_its_last_log_lines(monkeypatch):
    """The orchestrator's own logic: a service dying at start fails fast with its log.

    The catalogue gets one broken service (a test double of a service, not of
    any mechanism under test); the local provider runs it for real.
    """
    from stack import stack as stack_module
    from stack.spec import ServiceSpec

    broken = ServiceSpec(
        name="broken",
        image="none",
        command=lambda ctx: "echo 'config line 12: unknown key' >&2; exit 3",
        url=lambda host, ports, config: f"http://{host}:{ports['main']}",
        probe=lambda url: (_ for _ in ()).throw(ConnectionError("refused")),
    )
    monkeypatch.setitem(stack_module.SERVICES, "broken", broken)
    stack = Stack(StackConfig(provider="local", services=("broken",)))
    with pytest.raises(ServiceNotReady) as info:
        stack.start()
    assert "broken exited with status 3 before becoming ready" in str(info.value)
    assert "config line 12: unknown key" in str(info.value)
    assert info.value.log_tail == ["config line 12: unknown key"]
    assert_nothing_left(stack.stack_id, psutil.Process().pid, [])
