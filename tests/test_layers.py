"""Layers point one way: no import runs upward and no two modules import each other.

The layers (docs/architecture.md), bottom to top::

    0  runformat, marketplace      the run directory's format; the system under test
    1  runconfig                   the phase config and the defaults everything shares
    2  stack, fixtures, scenarios, analysis
    3  reports
    4  loadgate                    the CLI and orchestration
    5  locustfile.py, benchmarks   entry points

A module may import its own package and any package of a lower layer. Inside layer 2
the packages may import one another, but not in a loop (``scenarios`` reads
``fixtures``, so ``fixtures`` must not read ``scenarios``). Between modules there is no
import loop at all. Every import counts: at the top, inside a function, or under
``TYPE_CHECKING`` (a loop hidden in a function is still a loop), and so does a string
``"package.module:name"`` naming a project module for ``importlib`` to load later.

The walk reads the source with :mod:`ast` (nothing is imported) and the loop search is
:class:`graphlib.TopologicalSorter` from the standard library.
"""

from __future__ import annotations

import ast
import graphlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, int] = {
    "runformat": 0,
    "marketplace": 0,
    "runconfig": 1,
    "stack": 2,
    "fixtures": 2,
    "scenarios": 2,
    "analysis": 2,
    "reports": 3,
    "loadgate": 4,
    "locustfile": 5,
    "benchmarks": 5,
}
SIBLINGS_MAY_IMPORT = {2}
"""Layers whose packages may import each other (acyclically); elsewhere only downward."""
NOT_WALKED = {"tests", ".venv", "build", "test-artifacts"}
IMPORT_STRING = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+):[A-Za-z_]\w*$")
"""``"analysis.gates:p95"``: a module named for importlib, an import all the same."""

# Imports that break the rules and could not be fixed yet, (importer, imported) as
# module names, each with why. An entry that no longer matches an import fails
# test_allow_list_has_no_stale_entries: delete it then.
ALLOWED: dict[tuple[str, str], str] = {
    # Empty: every import points down. An entry here is (importer, imported): why.
}


def project_modules(root: Path) -> dict[str, Path]:
    """Every non-test module under ``root``: dotted name → file."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in NOT_WALKED or rel.parts[0].startswith("."):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Dotted names each import statement of the file may refer to, anywhere in it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (match := IMPORT_STRING.match(node.value))
        ):
            yield match.group(1)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the project modules it imports (``from p import m`` counts as ``p.m``)."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            # the longest prefix that is a project module: "reports.fmt" or "reports"
            parts = name.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != module:
                targets.add(".".join(parts))
        graph[module] = targets
    # "from reports import fmt" also names "reports"; keep only the module it meant
    for targets in graph.values():
        targets -= {t for t in list(targets) if any(o.startswith(t + ".") for o in targets)}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[0]
    if top not in LAYERS:
        raise AssertionError(f"{module}: package {top!r} has no layer: add it to LAYERS")
    return LAYERS[top]


def upward_imports(graph: dict[str, set[str]], allowed: dict | None = None) -> list[str]:
    """Imports into a higher layer, or sideways where the layer does not allow it."""
    allowed = ALLOWED if allowed is None else allowed
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = _layer(module), _layer(target)
            same_package = module.split(".")[0] == target.split(".")[0]
            if same_package or (module, target) in allowed:
                continue
            if there > here or (there == here and here not in SIBLINGS_MAY_IMPORT):
                found.append(f"{module} (layer {here}) imports {target} (layer {there})")
    return found


def _first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def import_loops(graph: dict[str, set[str]], allowed: dict | None = None) -> list[list[str]]:
    """Module loops, and package loops inside a layer; each loop once, one edge cut per round."""
    allowed = ALLOWED if allowed is None else allowed
    graph = {m: {t for t in ts if (m, t) not in allowed} for m, ts in graph.items()}
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets)
    loops = []
    for g in (graph, {p: ts - {p} for p, ts in packages.items()}):
        while (cycle := _first_cycle(g)) is not None:
            loops.append(cycle)
            g[cycle[1]].discard(cycle[0])  # graphlib lists the cycle against the edges
    return loops


# --- the repository -------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT)


def test_every_package_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert {m.split(".")[0] for m in graph} <= set(LAYERS)
    assert "scenarios.plugin" in graph and "runformat.records" in graph  # the walk sees them


def test_no_import_runs_upward(graph: dict[str, set[str]]) -> None:
    assert upward_imports(graph) == []


def test_no_import_loops(graph: dict[str, set[str]]) -> None:
    assert import_loops(graph) == []


def test_allow_list_has_no_stale_entries(graph: dict[str, set[str]]) -> None:
    """An entry whose import is gone only hides the next one: delete it."""
    stale = [edge for edge in ALLOWED if edge[1] not in graph.get(edge[0], set())]
    assert stale == []


def test_the_plugin_hands_the_config_to_the_personas(graph: dict[str, set[str]]) -> None:
    """The Locust plugin imports the personas, and the loop check keeps it one way."""
    assert "scenarios.personas" in graph["scenarios.plugin"]


# --- the test tested on a tree of its own ---------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_in_a_function_is_reported(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "runformat/__init__.py": "",
            "runformat/gate.py": "def f():\n    from loadgate.cli import app\n    return app\n",
            "runformat/criteria.py": 'EVALUATOR = "analysis.steps:evaluate"\n',
            "loadgate/__init__.py": "",
            "loadgate/cli.py": "from runformat import gate\napp = gate\n",
            "analysis/__init__.py": "",
            "analysis/steps.py": "from ..runformat import gate\n",
        },
    )
    graph = import_graph(root)
    assert graph["loadgate.cli"] == {"runformat.gate"}
    assert upward_imports(graph, allowed={}) == [
        "runformat.criteria (layer 0) imports analysis.steps (layer 2)",
        "runformat.gate (layer 0) imports loadgate.cli (layer 4)",
    ]
    allowed = {
        ("runformat.gate", "loadgate.cli"): "why",
        ("runformat.criteria", "analysis.steps"): "why",
    }
    assert upward_imports(graph, allowed=allowed) == []


def test_loops_between_modules_and_between_sibling_packages_are_reported(
    tmp_path: Path,
) -> None:
    root = _tree(
        tmp_path,
        {
            "fixtures/__init__.py": "",
            "fixtures/load.py": "from scenarios.catalogue import Catalogue\n",
            "scenarios/__init__.py": "",
            "scenarios/catalogue.py": "Catalogue = 1\n",
            "scenarios/flows.py": "from fixtures import load\n",
            "analysis/__init__.py": "",
            "analysis/gates.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from analysis.degradation import x\n",
            "analysis/degradation.py": "from . import gates\n",
        },
    )
    graph = import_graph(root)
    assert upward_imports(graph, allowed={}) == []  # same layer: sideways is allowed ...
    loops = import_loops(graph, allowed={})
    assert sorted(sorted(set(loop)) for loop in loops) == [
        ["analysis.degradation", "analysis.gates"],
        ["fixtures", "scenarios"],  # ... but not both ways
    ]
