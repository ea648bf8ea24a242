"""What a Locust process was given: the plan, the seed, the identities and its place.

``scenarios.plugin`` declares the ``--loadgate-*`` options and hands the plan to the
persona classes; the users (personas, the operator, the open model's arrival
drivers) and the traffic context read the rest here, from Locust's environment.
Plugin and users both import this module and never each other, so there is no
import cycle between them. Free of Locust imports: the environment is duck-typed.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from runconfig.constants import DEFAULT_SEED
from scenarios.credentials import CredentialPool
from scenarios.plan import LoadPlan, load_plan

if TYPE_CHECKING:
    from runconfig.phase_config import Defaults


def _option(environment: Any, name: str, default: Any) -> Any:
    options = getattr(environment, "parsed_options", None)
    return getattr(options, name, default) if options is not None else default


def plan_of(environment: Any) -> LoadPlan | None:
    """``--loadgate-plan`` (``plan.json`` of a resolved phase), or None without one."""
    path = _option(environment, "loadgate_plan", "")
    return load_plan(str(path)) if path else None


@functools.cache
def config_defaults() -> Defaults:
    """``[defaults]`` of ``config/phases.toml``: what a plain ``locust -f locustfile.py``
    (no plan) follows, so the persona mix, think times and traffic are the config's
    there too."""
    from runconfig.phase_config import load_phases

    return load_phases().defaults


def seed_of(environment: Any) -> int:
    """``--loadgate-seed`` (a remote worker learns it from the master at test start)."""
    return int(_option(environment, "loadgate_seed", DEFAULT_SEED))


def credentials_path(environment: Any) -> str:
    """``--loadgate-credentials``, else ``$LOADGATE_CREDENTIALS``, else the loader's default."""
    path = _option(environment, "loadgate_credentials", "")
    if not path:
        from fixtures.credentials import default_credentials_path

        path = os.environ.get("LOADGATE_CREDENTIALS") or str(default_credentials_path())
    return str(path)


def credential_pool(environment: Any) -> CredentialPool:
    """The identities this process hands out, starting at its own offset."""
    return CredentialPool.from_file(
        credentials_path(environment), offset=process_index(environment)
    )


def process_index(environment: Any) -> int:
    """This process's place in the run (the worker index; 0 when alone).

    Seeds and identity offsets derive from it, not from the pid, so two runs
    with the same seed and worker count make the same choices.
    """
    runner = getattr(environment, "runner", None)
    return max(0, int(getattr(runner, "worker_index", 0) or 0))
