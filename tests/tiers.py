"""Test tiers as markers, enforced: a test that starts what its markers do not allow fails.

The tiers (registered in pyproject.toml, ``--strict-markers``):

- ``services``: starts real services (Postgres, PgBouncer, Redis, OSRM, the Stripe mock,
  the marketplace), in-process or through the ``loadgate`` CLI;
- ``containers``: needs Docker (the containers provider);
- ``load``: runs Locust through ``loadgate run/reproduce/ci`` (a stack comes with it);
- ``smoke``: the one real end-to-end run kept in the default tier (also ``load``).

``bash scripts/test.sh`` runs ``smoke or not (load or containers)``; ``--all`` runs
everything. The check is real, not a convention: :mod:`tier_guard` records every start
in this process and in every Python child (its ``sitecustomize`` is put on
``PYTHONPATH``), and after each test's set-up and call this plugin fails the test if a
start needs a marker it lacks. ``load`` and ``containers`` imply ``services``.

Loaded from ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parent / "tier_guard"
sys.path.insert(0, str(SITE))
import tier_guard  # noqa: E402  (stdlib only; shared with the children's sitecustomize)

TIERS = ("services", "containers", "load", "smoke")
# Which markers allow a start of each tier.
ALLOWED_BY = {
    "services": {"services", "containers", "load"},
    "containers": {"containers"},
    "load": {"load"},
}
DEFAULT_SELECTION = "smoke or not (load or containers)"
SELECTED_ENV = "LOADGATE_SELECTED_TIERS"


def tiers_of(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers() if m.name in TIERS}


def violations(item_tiers: set[str], starts: list[tuple[str, str]]) -> list[str]:
    """Each start that ``item_tiers`` does not allow, as 'tier: what' (deduplicated)."""
    bad: list[str] = []
    for tier, what in starts:
        if not ALLOWED_BY.get(tier, set()) & item_tiers:
            line = f"@pytest.mark.{tier}: it started {what.split(' (pid')[0]}"
            if line not in bad:
                bad.append(line)
    return bad


class TierGuard:
    """Points ``$LOADGATE_TIER_LOG`` at a fresh file per test phase and reads it after."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="loadgate-tiers-"))
        self.count = 0
        tier_guard.install()
        path = os.environ.get("PYTHONPATH", "")
        if str(SITE) not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), path) if p)

    def begin(self) -> Path:
        self.count += 1
        log = self.dir / f"{self.count}.log"
        os.environ[tier_guard.ENV] = str(log)
        return log

    def end(self, item: pytest.Item, log: Path) -> None:
        os.environ.pop(tier_guard.ENV, None)
        starts = tier_guard.read(str(log))
        log.unlink(missing_ok=True)
        bad = violations(tiers_of(item), starts)
        if bad:
            pytest.fail(
                f"{item.nodeid} lacks its tier marker(s): "
                + "; ".join(bad)
                + ". Mark it (tests/tiers.py says what each tier means): the markers"
                " decide what `bash scripts/test.sh` runs by default.",
                pytrace=False,
            )

    def close(self) -> None:
        os.environ.pop(tier_guard.ENV, None)
        for child in self.dir.iterdir():
            child.unlink(missing_ok=True)
        self.dir.rmdir()


_guard: TierGuard | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _guard
    _guard = TierGuard()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _guard
    if _guard is not None:
        _guard.close()
        _guard = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``smoke`` is a real run: it must also be ``load`` so the guard allows it."""
    for item in items:
        if "smoke" in tiers_of(item) and "load" not in tiers_of(item):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.smoke needs @pytest.mark.load")


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``$LOADGATE_SELECTED_TIERS``: write the tiers the selection uses (one a line),
    so ``scripts/test.sh`` starts Docker only when containers tests are selected."""
    path = os.environ.get(SELECTED_ENV)
    if path:
        used = sorted({t for item in session.items for t in tiers_of(item)})
        Path(path).write_text("".join(f"{t}\n" for t in used))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _guarded(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _guarded(item)


def _guarded(item: pytest.Item) -> Iterator[None]:
    if _guard is None:
        return (yield)
    log = _guard.begin()
    try:
        result = yield
    finally:
        # A failure of the test itself stays the reported one; the guard's comes after.
        os.environ.pop(tier_guard.ENV, None)
    _guard.end(item, log)
    return result
