"""Numbers and names that must exist twice (SQL and Python, config and run format,
config and Locust classes) are tied here, so changing one copy fails until the other
follows (issue 23 item 3: one source per number)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from marketplace.profiles import EDGE_ROLE, PHASE0
from runconfig.constants import PERSONAS
from runconfig.phase_config import load_phases
from runformat.gate import ValiditySpec
from scenarios.flows import FLOWS, ROLE_OF

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "marketplace" / "migrations"


def _connection_limit(sql: str, role: str) -> int:
    """The ``CONNECTION LIMIT`` an SQL text gives ``role`` (the one statement that sets it)."""
    limits = re.findall(
        rf"\bROLE\s+{re.escape(role)}\b[^;]*?\bCONNECTION\s+LIMIT\s+(-?\d+)", sql, re.I | re.S
    )
    assert len(limits) == 1, f"expected one CONNECTION LIMIT for {role}, found {limits}"
    return int(limits[0])


def test_the_edge_roles_connection_limit_is_the_profiles_cap() -> None:
    """Migration 0006 enforces phase0's cap in Postgres; the service sizes its pool by
    ``db_connection_cap``: the two are the seed's one number (§1.1, 15)."""
    sql = (MIGRATIONS / "0006_edge_role.sql").read_text()
    assert _connection_limit(sql, EDGE_ROLE) == PHASE0.db_connection_cap


def test_the_connection_limit_parser_reads_what_it_is_given() -> None:
    assert _connection_limit("ALTER ROLE edge CONNECTION LIMIT 7;", "edge") == 7
    assert _connection_limit("ALTER ROLE other CONNECTION LIMIT 7;\n", "other") == 7


def test_the_run_formats_fallback_validity_is_the_configs() -> None:
    """A manifest without ``config.validity`` (synthetic runs, tools) is judged by
    ``ValiditySpec``'s defaults; ``[defaults.validity]`` of config/phases.toml is what
    every ``loadgate run`` records. They must be the same bounds."""
    assert load_phases().defaults.validity.model_dump() == ValiditySpec().to_dict()


def test_the_locust_side_knows_exactly_the_configs_personas() -> None:
    """The persona classes and flows are keyed by runconfig's one tuple, in its order.

    The classes are read from the source: importing Locust here would monkey-patch ssl
    after the test session imported it (tests/test_scenarios.py runs them in a subprocess).
    """
    assert tuple(FLOWS) == PERSONAS
    assert _persona_classes(ROOT / "scenarios" / "personas.py") == PERSONAS
    assert set(ROLE_OF) == {*PERSONAS, "operations"}


def _persona_classes(path: Path) -> tuple[str, ...]:
    """``persona = "..."`` of each class in the file, in order."""
    return tuple(
        node.value.value
        for cls in ast.parse(path.read_text()).body
        if isinstance(cls, ast.ClassDef)
        for node in cls.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["persona"]
        and isinstance(node.value, ast.Constant)
    )
