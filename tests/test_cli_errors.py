"""Bad input: one clear error line naming the fix, non-zero exit, nothing left."""

from __future__ import annotations

import socket

import pytest

from tests.cli_helpers import run_cli


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_clear_error(result, *needles: str) -> str:
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_docker_asked_for_but_unreachable(tmp_path):
    result = run_cli(
        ["stack", "up", "--provider", "containers"],
        tmp_path,
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )
    assert_one_clear_error(result, "Docker engine", "--provider local")
    assert result.returncode == 2


def test_binary_missing(tmp_path):
    # With an empty PATH, redis-server cannot be found.
    result = run_cli(
        ["stack", "up", "--provider", "local", "-s", "redis"], tmp_path, PATH="/nonexistent"
    )
    assert_one_clear_error(result, "redis-server not found", "apt-get install redis-server")


@pytest.mark.services
def test_port_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli(
            ["stack", "up", "--provider", "local", "-s", "redis", "--port", f"redis={port}"],
            tmp_path,
        )
    assert_one_clear_error(result, f"port {port} for redis is already in use", "--port redis=")


@pytest.mark.services
def test_service_never_ready(tmp_path):
    result = run_cli(
        ["stack", "up", "--provider", "local", "-s", "postgres", "--ready-timeout", "0.05"],
        tmp_path,
    )
    assert_one_clear_error(result, "postgres not ready after 0.05 s", "--ready-timeout")
    assert not (tmp_path / "stack.json").exists()


def test_unknown_service(tmp_path):
    result = run_cli(["stack", "up", "-s", "kafka"], tmp_path)
    assert_one_clear_error(result, "unknown service 'kafka'", "postgres")
    assert result.returncode == 2


def test_unknown_provider(tmp_path):
    result = run_cli(["stack", "up", "--provider", "k8s"], tmp_path)
    assert_one_clear_error(result, "unknown provider 'k8s'", "local")


def test_bad_port_syntax(tmp_path):
    result = run_cli(["stack", "up", "--port", "redis:99"], tmp_path)
    assert_one_clear_error(result, "NAME=PORT")


def test_bad_stripe_latency(tmp_path):
    result = run_cli(["stack", "up", "--stripe-latency", "fast"], tmp_path)
    assert_one_clear_error(result, "MIN-MAX")
