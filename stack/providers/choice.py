"""Choosing a provider: containers where a Docker engine answers, else local.

Also the one place that reaps what SIGKILLed harnesses left behind, so every
``loadgate`` start begins from a clean machine whichever provider it picks.
The containers provider's module is imported only when that provider is used
or an engine answers.
"""

from __future__ import annotations

from collections.abc import Callable

from stack.config import StackConfig
from stack.engine import docker_problem
from stack.errors import DockerUnavailable
from stack.providers.base import Provider
from stack.providers.local import LocalProvider


def choose_provider_name(config: StackConfig, problem: str | None) -> str:
    """``problem`` is :func:`stack.engine.docker_problem`'s answer, asked once per start."""
    if config.provider != "auto":
        return config.provider
    return "containers" if problem is None else "local"


def _containers_class() -> type[Provider]:
    from stack.providers.containers import ContainersProvider

    return ContainersProvider


def reap_leftovers(
    progress: Callable[[str], None] = lambda m: None, docker_ok: bool | None = None
) -> list[str]:
    """Remove processes, containers and temp dirs of dead earlier stacks."""
    reaped = LocalProvider.reap_leftovers()
    if docker_ok is None:
        docker_ok = docker_problem() is None
    if docker_ok:
        reaped += _containers_class().reap_leftovers()
    for item in reaped:
        progress(f"reaped leftover {item}")
    return reaped


def make_provider(config: StackConfig, stack_id: str, progress: Callable[[str], None]) -> Provider:
    """The provider for one stack, after reaping what dead stacks left."""
    problem = docker_problem()
    name = choose_provider_name(config, problem)
    if name == "containers" and problem is not None:
        raise DockerUnavailable(
            f"the containers provider needs a Docker engine but none answers ({problem}): "
            "start one (scripts/docker-engine.sh does it here) or use --provider local"
        )
    reap_leftovers(progress, docker_ok=problem is None)
    if name == "containers":
        provider = _containers_class()(config, stack_id)
    else:
        provider = LocalProvider(config, stack_id)
    provider.progress = progress  # type: ignore[attr-defined]
    return provider
