"""Shared fixtures: real stacks, per provider, and leftover detection.

The containers provider needs a Docker engine. ``scripts/test.sh`` starts one
(and CI runs that script), so in CI a missing engine is a failure, never a
skip; elsewhere (a laptop without Docker) those tests skip and say why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.config import StackConfig
from stack.stack import Stack
from tests.support import PROVIDERS, STRIPE_UNDER_TEST, require_provider


@pytest.fixture(scope="session", params=PROVIDERS)
def full_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Every service including the replica, once per provider per session."""
    provider = request.param
    require_provider(provider)
    config = StackConfig(provider=provider, with_replica=True, stripe=STRIPE_UNDER_TEST)
    with Stack(config) as stack:
        yield stack
