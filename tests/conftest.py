"""Shared fixtures: real stacks, per provider; the session's one real run (smoke); the
short phase-0 and phase-2 runs that several load tests read.

The containers provider needs a Docker engine. ``scripts/test.sh`` starts one
(and CI runs that script), so in CI a missing engine is a failure, never a
skip; elsewhere (a laptop without Docker) those tests skip and say why.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.config import StackConfig
from stack.ports import free_port
from stack.stack import Stack
from tests.cli_helpers import fast_config, loadgate_env, run_cli
from tests.leftovers import listening
from tests.support import PROVIDERS, STRIPE_UNDER_TEST, require_provider

# Test tiers as markers, enforced (services / containers / load / smoke).
pytest_plugins = ["tests.tiers", "pytester"]


@pytest.fixture(scope="session", params=PROVIDERS)
def full_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Every service including the replica, once per provider per session."""
    provider = request.param
    require_provider(provider)
    config = StackConfig(provider=provider, with_replica=True, stripe=STRIPE_UNDER_TEST)
    with Stack(config) as stack:
        yield stack


@dataclass(frozen=True)
class SmokeRun:
    """What the smoke run left: its run directory and how ``loadgate ci`` ended."""

    out: Path
    result: subprocess.CompletedProcess[str]
    summary: Path
    github_output: Path
    root: Path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The default tier's one real end-to-end run, read by every ``smoke`` test (they
    only read it: copy before changing anything). Stack, tiny fixtures, a Locust master
    and two workers, samplers, analysis, reports and the verdict, made through
    ``loadgate ci`` (which runs ``loadgate run`` and judges it): phase 1, 12 users,
    36 s of load with short think times. Exit 3 (neutral): 12 users never apply the
    phase-1 gate, so the verdict is PROJECTED, or INVALID on a machine too busy for
    the generator's own checks; never PASS or FAIL."""
    root = tmp_path_factory.mktemp("smoke")
    out, summary, outputs = root / "runs" / "tonight", root / "summary.md", root / "gh-output"
    args = ["--phase", "1", "--provider", "local", "--fixture-size", "tiny", "--workers", "2"]
    args += ["--users", "12", "--duration", "36s", "--config", str(fast_config(root))]
    result = run_cli(
        ["ci", *args, "--out", str(out), "--summary", str(summary), "--baseline", "nope"],
        root / "state",
        timeout=420,
        GITHUB_OUTPUT=str(outputs),
    )
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    return SmokeRun(out, result, summary, outputs, root)


@dataclass(frozen=True)
class Phase2Run:
    """The shared phase-2 run's directory, and the config its plan reads."""

    out: Path
    plan_config: Path


PHASE2_USERS = 24


@pytest.fixture(scope="session")
def phase2_run(tmp_path_factory: pytest.TempPathFactory) -> Phase2Run:
    """One short real phase-2 run with its own stack and reports, read by two load tests
    that used to make a run each (docs/testing.md): the plan's Stripe projection
    (tests/test_plan_cli.py) and job completion (tests/test_traffic_run.py).

    24 users, 90 s, tiny fixtures, short think times; the phase-2 gate at 24 users, so
    its criteria are applied; the operator's batch generation every 6 s, and payouts
    paid 1 s after they are queued instead of the seed's 60 s, so the jobs enqueued in
    the window complete within the run. Payouts stay every 60 s: their Stripe transfers
    are calls no checkout made (the plan test leaves them out of its own count). The
    plan reads the shipped milestones (``plan_config``: the gate at the seed's 15,000
    users)."""
    root = tmp_path_factory.mktemp("phase2")
    plan_config = fast_config(root)
    text = plan_config.read_text()
    for old, new in (
        ("gate_users = 15000", f"gate_users = {PHASE2_USERS}"),
        ("batch_interval_s = 60", "batch_interval_s = 6"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    config = root / "run.toml"
    config.write_text(text)
    out = root / "run"
    args = ["--phase", "2", "--provider", "local", "--fixture-size", "tiny", "--workers", "1"]
    args += ["--users", str(PHASE2_USERS), "--duration", "90s", "--gate-hold-max", "0"]
    result = run_cli(
        ["run", *args, "--config", str(config), "--out", str(out)],
        root / "state",
        timeout=420,
        LOADGATE_PAYOUT_DELAY_S="1",
    )
    # 0/1/3: the verdict its data gives (PASS, FAIL, or INCONCLUSIVE/INVALID on a busy box)
    assert result.returncode in (0, 1, 3), result.stdout[-3000:] + result.stderr[-3000:]
    return Phase2Run(out, plan_config)


@dataclass(frozen=True)
class Phase0Run:
    """What the shared phase-0 run left: its run directory, how ``loadgate run`` ended
    (its stdout was a pipe), and the exit code of the worker that joined it."""

    out: Path
    returncode: int
    stdout: str
    stderr: str
    worker_returncode: int
    users: int


@pytest.fixture(scope="session")
def phase0_run(tmp_path_factory: pytest.TempPathFactory) -> Phase0Run:
    """One short real phase-0 run, read by the real phase-0 report test
    (tests/test_report_cli.py) and the remote-worker test (tests/test_run.py), which used
    to make a run each (docs/testing.md).

    ``loadgate run`` with one local worker and one ``loadgate worker`` joining it as from
    another machine (shared run directory), 12 users, 30 s, tiny fixtures, short think
    times, reports on; its stdout is a pipe, as in a CI log."""
    root = tmp_path_factory.mktemp("phase0")
    out, port, users = root / "run", free_port(), 12
    env = loadgate_env(root / "state")
    args = ["--phase", "0", "--provider", "local", "--fixture-size", "tiny", "--workers", "1"]
    args += ["--remote-workers", "1", "--master-port", str(port), "--users", str(users)]
    args += ["--duration", "30s", "--config", str(fast_config(root)), "--out", str(out)]
    run = subprocess.Popen(
        [sys.executable, "-m", "loadgate", "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 180
        while not listening(port):
            assert run.poll() is None, run.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the master never listened"
            time.sleep(0.2)
        worker = subprocess.Popen(
            [sys.executable, "-m", "loadgate", "worker", "--master", "127.0.0.1",
             "--master-port", str(port), "--run-dir", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        stdout, stderr = run.communicate(timeout=300)
        worker_code = worker.wait(timeout=60)
    finally:
        for proc in (run, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
    return Phase0Run(out, run.returncode, stdout, stderr, worker_code, users)
