"""Shared fixtures: real stacks, per provider; the session's one real run (smoke).

The containers provider needs a Docker engine. ``scripts/test.sh`` starts one
(and CI runs that script), so in CI a missing engine is a failure, never a
skip; elsewhere (a laptop without Docker) those tests skip and say why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.config import StackConfig
from stack.stack import Stack
from tests.cli_helpers import fast_config, run_cli
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
