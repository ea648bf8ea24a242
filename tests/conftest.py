"""Shared fixtures: real stacks, per provider, and leftover detection.

The containers provider needs a Docker engine. ``scripts/test.sh`` starts one
(and CI runs that script), so in CI a missing engine is a failure, never a
skip; elsewhere (a laptop without Docker) those tests skip and say why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stack.config import StackConfig, StripeRealism
from stack.engine import docker_problem
from stack.stack import Stack

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PROVIDERS = [pytest.param("local"), pytest.param("containers", marks=pytest.mark.containers)]


def require_provider(provider: str) -> None:
    """Skip (outside CI only) when the provider cannot run on this machine."""
    if provider != "containers":
        return
    problem = docker_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI must run the containers provider but no Docker engine answers: {problem}")
    pytest.skip(f"no Docker engine answers ({problem}); run scripts/test.sh to start one")


# The seed's Stripe: 200-500 ms, but a low rate limit so a burst test stays small.
STRIPE_UNDER_TEST = StripeRealism(latency_min_ms=200, latency_max_ms=500, rate_limit_per_s=20)


@pytest.fixture(scope="session", params=PROVIDERS)
def full_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Every service including the replica, once per provider per session."""
    provider = request.param
    require_provider(provider)
    config = StackConfig(provider=provider, with_replica=True, stripe=STRIPE_UNDER_TEST)
    with Stack(config) as stack:
        yield stack
