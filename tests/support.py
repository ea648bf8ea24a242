"""Constants and helpers shared by the test modules (not fixtures)."""

from __future__ import annotations

import os

import pytest

from stack.config import StripeRealism
from stack.engine import docker_problem

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
