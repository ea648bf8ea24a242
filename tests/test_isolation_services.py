"""CPU isolation on the real local stack: Postgres backends started after the stack was
placed (a new connection forks a new backend) land on the stack's CPUs or in the stack's
cgroup, the generator's side is another, and teardown leaves no cgroup behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

from stack.config import StackConfig
from stack.isolation import (
    CpuSplit,
    Isolation,
    IsolationPlan,
    cgroup_cpu_root,
    reap_cgroups,
    unavailable,
)
from stack.stack import Stack

pytestmark = pytest.mark.services

CPUS = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="a CPU split needs 2 CPUs")


def _plan(mechanism: str) -> IsolationPlan:
    return IsolationPlan(mechanism, mechanism, CpuSplit((CPUS[0],), tuple(CPUS[1:])))  # type: ignore[arg-type]


def _new_backend_pid(stack: Stack) -> int:
    """The pid of a backend forked now, for this connection (after the placement)."""
    with psycopg.connect(stack.url("postgres"), autocommit=True) as conn:
        return conn.execute("select pg_backend_pid()").fetchone()[0]


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            return path
    return ""


@needs_two
def test_cpuset_puts_later_postgres_backends_on_the_stacks_cpus():
    isolated = Isolation(_plan("cpuset"), "test-cpuset")
    try:
        with Stack(
            StackConfig(provider="local", services=("postgres",), placement=isolated.stack)
        ) as stack:
            backend = _new_backend_pid(stack)
            with psycopg.connect(stack.url("postgres"), autocommit=True) as conn:
                pid = conn.execute("select pg_backend_pid()").fetchone()[0]
                assert sorted(psutil.Process(pid).cpu_affinity()) == list(CPUS[1:])
            postmaster = stack.services["postgres"].pid
            assert sorted(psutil.Process(postmaster).cpu_affinity()) == list(CPUS[1:])
            assert backend != pid  # two connections, two backends forked after placement
        # The harness itself was not moved: only its children were placed.
        assert sorted(os.sched_getaffinity(0)) == CPUS
    finally:
        isolated.close()


@needs_two
def test_the_generators_side_is_the_other_cpus_and_the_harness_is_restored():
    isolated = Isolation(_plan("cpuset"), "test-gen")
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            preexec_fn=isolated.generator.enter,
        )
        try:
            assert psutil.Process(child.pid).cpu_affinity() == [CPUS[0]]
        finally:
            child.kill()
            child.wait()
        isolated.place_self()
        assert sorted(os.sched_getaffinity(0)) == [CPUS[0]]
    finally:
        isolated.close()
    assert sorted(os.sched_getaffinity(0)) == CPUS


@pytest.mark.skipif(unavailable("weights", len(CPUS)) is not None, reason="no writable cpu cgroup")
def test_weights_put_later_postgres_backends_in_the_stacks_cgroup_and_teardown_removes_it():
    isolated = Isolation(_plan("weights"), "test-weights")
    stack_group, generator_group = isolated.stack.cgroup, isolated.generator.cgroup
    assert stack_group is not None and generator_group is not None
    try:
        version, root = cgroup_cpu_root()  # type: ignore[misc]
        shares = "cpu.shares" if version == 1 else "cpu.weight"
        assert int((generator_group / shares).read_text()) > int((stack_group / shares).read_text())
        with (
            Stack(
                StackConfig(provider="local", services=("postgres",), placement=isolated.stack)
            ) as stack,
            psycopg.connect(stack.url("postgres"), autocommit=True) as conn,
        ):
            pid = conn.execute("select pg_backend_pid()").fetchone()[0]
            assert _cgroup_of(pid).endswith(stack_group.name)
            members = (stack_group / "cgroup.procs").read_text().split()
            assert str(pid) in members
            assert str(stack.services["postgres"].pid) in members
        isolated.place_self()
        assert _cgroup_of(os.getpid()).endswith(generator_group.name)
    finally:
        isolated.close()
    assert not stack_group.exists() and not generator_group.exists()
    assert not _cgroup_of(os.getpid()).endswith(generator_group.name)


@pytest.mark.skipif(unavailable("weights", len(CPUS)) is not None, reason="no writable cpu cgroup")
def test_cgroups_of_a_dead_owner_are_reaped():
    _, root = cgroup_cpu_root()  # type: ignore[misc]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = root / f"loadgate-{dead.stdout.strip()}-abc-stack"
    mine = root / f"loadgate-{os.getpid()}-abc-stack"
    leftover.mkdir()
    mine.mkdir()
    try:
        reaped = reap_cgroups()
        assert f"cgroup {leftover}" in reaped and not leftover.exists()
        assert mine.exists()  # its owner (this process) lives
    finally:
        for path in (leftover, mine):
            if path.exists():
                path.rmdir()
