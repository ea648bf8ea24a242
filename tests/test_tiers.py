"""The tier guard (tests/tiers.py, tests/tier_guard/): what counts as a start of each
tier, which markers allow it, and, end to end in a separate pytest, that a test starting
a service or Locust (itself or through a child process) without its marker fails."""

from __future__ import annotations

import sys
import textwrap
import tomllib
import types
from pathlib import Path

import pytest
import tier_guard

from tests.tiers import DEFAULT_SELECTION, violations

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sh", "-c", "exec redis-server --port 6400 --bind 127.0.0.1"], "services"),
        (["/usr/lib/postgresql/15/bin/postgres", "-D", "/tmp/pg"], "services"),
        (["runuser", "-u", "nobody", "--", "pgbouncer", "/tmp/pgb.ini"], "services"),
        (["/x/osrm/bin/osrm-routed", "--algorithm", "mld", "/m/map"], "services"),
        ([sys.executable, "-m", "marketplace", "--profile", "phase1"], "services"),
        ([sys.executable, "/tmp/w/stripe_mock.py", "--port", "1"], "services"),
        ([sys.executable, "-m", "locust", "--master"], "load"),
        ([sys.executable, "-m", "loadgate", "run", "--phase", "1"], None),  # its children count
        ([sys.executable, "-m", "pytest", "-q"], None),
        (["/x/osrm/bin/osrm-extract", "map.osm.pbf"], None),  # building a map starts nothing
        ("ls -l", None),
    ],
)
def test_what_counts_as_a_start(argv, expected):
    found = tier_guard.classify(argv)
    assert (found[0] if found else None) == expected


def test_which_markers_allow_which_starts():
    service, locust = ("services", "redis-server"), ("load", "Locust")
    container = ("containers", "the containers provider (Docker)")
    assert violations(set(), [service]) == ["@pytest.mark.services: it started redis-server"]
    assert violations({"services"}, [service]) == []
    assert violations({"load"}, [service, locust]) == []  # a load run brings its stack
    assert violations({"containers"}, [service, container]) == []
    assert violations({"services"}, [service, locust]) == ["@pytest.mark.load: it started Locust"]
    assert violations({"services", "load"}, [container]) != []
    assert violations(set(), [service, service]) == violations(set(), [service])


def test_the_containers_provider_is_a_containers_start(tmp_path, monkeypatch):
    class ContainersProvider:
        def prepare(self, specs):
            return "prepared"

        def start(self, spec, ports, peers):
            return spec

    module = types.SimpleNamespace(ContainersProvider=ContainersProvider)
    tier_guard.patch_containers(module)
    tier_guard.patch_containers(module)  # idempotent: one note per call, not two
    log = tmp_path / "tiers.log"
    monkeypatch.setenv(tier_guard.ENV, str(log))
    assert ContainersProvider().start("redis", {}, {}) == "redis"
    assert [t for t, _ in tier_guard.read(str(log))] == ["containers"]


def test_markers_are_registered_and_strict():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    opts = config["ini_options"]
    names = {m.split(":")[0] for m in opts["markers"]}
    assert {"services", "containers", "load", "smoke"} <= names
    assert "--strict-markers" in opts["addopts"] and "--durations=15" in opts["addopts"]
    assert DEFAULT_SELECTION in (REPO / "scripts" / "test.sh").read_text()


GUARDED = """
import subprocess
import sys

import pytest

FAKE = {fake!r}  # a stand-in "redis-server" that exits at once
CHILD = "import subprocess; subprocess.run(['/bin/true', '-m', 'locust'])"


def test_unmarked_starts_a_service():
    subprocess.run([FAKE, "--port", "1"], check=True)


@pytest.mark.services
def test_marked_starts_a_service():
    subprocess.run([FAKE, "--port", "1"], check=True)


@pytest.fixture(scope="module")
def stack():
    subprocess.run([FAKE], check=True)


def test_unmarked_gets_a_service_from_a_fixture(stack):
    pass


@pytest.mark.services
def test_services_marker_runs_locust_in_a_child():
    subprocess.run([sys.executable, "-c", CHILD], check=True)


@pytest.mark.load
def test_load_marker_runs_locust_in_a_child():
    subprocess.run([sys.executable, "-c", CHILD], check=True)


def test_unmarked_starts_nothing():
    subprocess.run(["/bin/true"], check=True)
"""


def test_a_test_starting_what_its_markers_omit_fails(pytester, monkeypatch, tmp_path):
    """In a separate pytest with this suite's markers and plugin: starts in the test,
    in its fixtures and in its child processes are all checked."""
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.delenv(tier_guard.ENV, raising=False)  # this test's own log stays out
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    lines = "\n".join(f"    {m}" for m in markers["ini_options"]["markers"])
    pytester.makeini(f"[pytest]\naddopts = --strict-markers\nmarkers =\n{lines}\n")
    pytester.makepyfile(test_guarded=textwrap.dedent(GUARDED.format(fake=str(fake))))
    result = pytester.runpytest_subprocess("-p", "tests.tiers", "-rA", "test_guarded.py")
    outcomes = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(word + " ") and "::" in line:
                outcomes[line.split("::")[1].split()[0]] = word
    assert outcomes == {
        "test_unmarked_starts_a_service": "FAILED",
        "test_marked_starts_a_service": "PASSED",
        "test_unmarked_gets_a_service_from_a_fixture": "ERROR",
        "test_services_marker_runs_locust_in_a_child": "FAILED",
        "test_load_marker_runs_locust_in_a_child": "PASSED",
        "test_unmarked_starts_nothing": "PASSED",
    }, result.stdout.str()
    text = result.stdout.str()
    assert "lacks its tier marker(s): @pytest.mark.services: it started redis-server" in text
    assert "@pytest.mark.load: it started Locust" in text
