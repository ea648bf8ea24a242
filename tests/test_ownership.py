"""Process ownership (stack/ownership.py): owned children die with their harness,
and what dead owners left behind is reaped, and nothing of a live owner is.

The stack's services and the Locust cluster both start their processes through
``spawn_owned``; the teardown tests (tests/test_teardown.py) check the same
guarantee end to end through a whole stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from stack.ownership import (
    OWNER_ENV,
    STACK_ENV,
    make_owned_temp_dir,
    owned_temp_prefix,
    reap_processes,
    reap_temp_dirs,
)

TEST_PREFIX = f"loadgate-test-ownership-{os.getpid()}-"
"""A prefix of this test's own: reaping it cannot touch anyone else's temp dirs."""

HARNESS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from stack.ownership import spawn_owned

    with open(os.devnull, "wb") as log:
        child = spawn_owned(["sleep", "120"], log, Path("."), dict(os.environ), stack_id="s1")
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def dead_pid() -> int:
    """A pid that no process has (a just-reaped child's)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_owned_child_is_tagged_and_dies_with_its_harness() -> None:
    repo = Path(__file__).resolve().parent.parent
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS],
        cwd=repo,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert harness.stdout is not None
        child_pid = int(harness.stdout.readline())
        child = psutil.Process(child_pid)
        env = child.environ()
        assert env[OWNER_ENV] == str(harness.pid)
        assert env[STACK_ENV] == "s1"
        assert os.getsid(child_pid) == child_pid  # its own session: Ctrl-C reaches the harness
        harness.kill()
        harness.wait(timeout=10)
        assert wait_gone(child_pid), "the owned child outlived its SIGKILLed harness"
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(timeout=10)


def test_reap_processes_kills_only_orphans_of_dead_owners() -> None:
    orphan = subprocess.Popen(["sleep", "120"], env={**os.environ, OWNER_ENV: str(dead_pid())})
    owned = subprocess.Popen(["sleep", "120"], env={**os.environ, OWNER_ENV: str(os.getpid())})
    try:
        reaped = reap_processes()
        assert any(item.startswith(f"process {orphan.pid} ") for item in reaped), reaped
        orphan.wait(timeout=10)
        assert owned.poll() is None
        assert not any(item.startswith(f"process {owned.pid} ") for item in reaped)
    finally:
        for proc in (orphan, owned):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_reap_temp_dirs_removes_only_dead_owners_dirs() -> None:
    leftover = Path(tempfile.mkdtemp(prefix=f"{TEST_PREFIX}{dead_pid()}-x-"))
    (leftover / "data").mkdir()
    mine = make_owned_temp_dir(TEST_PREFIX, "y")
    try:
        assert mine.name.startswith(owned_temp_prefix(TEST_PREFIX, "y"))
        assert mine.stat().st_mode & 0o777 == 0o755  # the postgres user traverses it
        reaped = reap_temp_dirs(TEST_PREFIX)
        assert reaped == [f"temp dir {leftover}"]
        assert not leftover.exists()
        assert mine.is_dir()
    finally:
        mine.rmdir()


@pytest.mark.parametrize("owner", ["", "not-a-pid"])
def test_processes_without_a_valid_owner_are_not_ours(owner: str) -> None:
    stranger = subprocess.Popen(["sleep", "120"], env={**os.environ, OWNER_ENV: owner})
    try:
        reaped = reap_processes()
        assert stranger.poll() is None
        assert not any(item.startswith(f"process {stranger.pid} ") for item in reaped)
    finally:
        stranger.kill()
        stranger.wait(timeout=10)
