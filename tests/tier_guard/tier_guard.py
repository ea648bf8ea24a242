"""What a test process (or any process it starts) brings up, by tier.

Used twice: by the pytest plugin ``tests/tiers.py`` in the test process, and through
``sitecustomize.py`` beside this file in every Python child of a test (the plugin puts
this directory on ``PYTHONPATH``), so a ``loadgate run`` started with ``subprocess`` is
seen as well as a stack started in-process. Each start is appended as ``tier<TAB>what``
to the file named by ``$LOADGATE_TIER_LOG``; the plugin reads it after each test's
set-up and call and fails a test that started something its markers do not allow.

Stdlib only, and nothing happens while ``$LOADGATE_TIER_LOG`` is unset: this runs at
the start-up of every Python child of the suite.

What counts as a start (the stack's real start-up points):
- ``services``: a process running a service binary (Postgres, PgBouncer, Redis,
  osrm-routed; directly or through ``sh -c``/``runuser``), the Stripe mock, or a
  ``python -m marketplace`` service;
- ``load``: a ``python -m locust`` process (what ``loadgate run/reproduce/ci`` start);
- ``containers``: the containers provider preparing images or starting a container.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

ENV = "LOADGATE_TIER_LOG"
SERVICE_BINARIES = re.compile(
    r"(?:^|[\s/])(postgres|pg_ctl|initdb|pgbouncer|redis-server|osrm-routed)(?=\s|$)"
)
PYTHON_MODULE = re.compile(r"(?:^|\s)-m\s+(\S+)")
SERVICE_MODULES = {"marketplace": "the marketplace service", "stack.stripe_mock": "the Stripe mock"}
CONTAINERS_MODULE = "stack.providers.containers"


def classify(argv: Any) -> tuple[str, str] | None:
    """``(tier, what)`` when a command line starts a service or Locust, else None."""
    if isinstance(argv, str | bytes | os.PathLike):
        argv = [argv]
    text = " ".join(os.fsdecode(a) if isinstance(a, bytes | os.PathLike) else str(a) for a in argv)
    for match in PYTHON_MODULE.finditer(text):
        module = match.group(1)
        if module == "locust" or module.startswith("locust."):
            return "load", "Locust (python -m locust)"
        root = module.split(".")[0]
        if module in SERVICE_MODULES or root in SERVICE_MODULES:
            return "services", SERVICE_MODULES.get(module, SERVICE_MODULES.get(root, module))
    if "stripe_mock.py" in text:
        return "services", "the Stripe mock"
    found = SERVICE_BINARIES.search(text)
    if found:
        return "services", found.group(1)
    return None


def note(tier: str, what: str) -> None:
    """Record one start in ``$LOADGATE_TIER_LOG`` (nothing when unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{tier}\t{what} (pid {os.getpid()})\n")
    except OSError:
        pass  # the test that owned this log is over; nothing to attribute it to


def read(path: str) -> list[tuple[str, str]]:
    """The starts recorded in ``path`` (missing file: none)."""
    try:
        with open(path, encoding="utf-8") as log:
            lines = log.read().splitlines()
    except FileNotFoundError:
        return []
    return [tuple(line.split("\t", 1)) for line in lines if "\t" in line]  # type: ignore[misc]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen" or not os.environ.get(ENV):
        return
    found = classify(args[1])
    if found:
        note(*found)


def patch_containers(module: Any) -> None:
    """Note ``containers`` whenever the containers provider builds or starts anything."""
    cls = module.ContainersProvider
    if getattr(cls, "_tier_guard", False):
        return
    for name in ("prepare", "start"):
        original = getattr(cls, name)

        def wrapped(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            note("containers", "the containers provider (Docker)")
            return __original(self, *args, **kwargs)

        setattr(cls, name, wrapped)
    cls._tier_guard = True


class _ContainersFinder(importlib.abc.MetaPathFinder):
    """Patches the containers provider as it is imported (children import it lazily)."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if name != CONTAINERS_MODULE:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch_containers(module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


_installed = False


def install() -> None:
    """Watch this process's starts (idempotent; audit hooks cannot be removed)."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    module = sys.modules.get(CONTAINERS_MODULE)
    if module is not None:
        patch_containers(module)
    else:
        sys.meta_path.insert(0, _ContainersFinder())
