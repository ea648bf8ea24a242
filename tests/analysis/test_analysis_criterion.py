"""The evaluator registry: every criterion of runformat.criteria has exactly one
evaluator in analysis, and nothing registers under a name the run format lacks."""

from __future__ import annotations

import pytest

from analysis import criterion, gate_criteria, gates
from runformat.criteria import CRITERIA


def test_every_criterion_has_an_evaluator():
    assert gates.EVALUATOR_MODULES  # importing gates registers every evaluator module
    assert set(criterion.EVALUATORS) == set(CRITERIA)


def test_a_name_the_run_format_lacks_cannot_register():
    with pytest.raises(KeyError, match="no criterion"):
        criterion.evaluates("p99_ms")


def test_a_second_evaluator_for_a_name_is_refused():
    with pytest.raises(KeyError, match="two evaluators"):
        criterion.evaluates("p95_ms")(lambda ctx, spec, limit, route: [])
    assert criterion.evaluator("p95_ms") is gate_criteria.p95


def test_an_unregistered_name_names_itself():
    with pytest.raises(KeyError, match="no registered evaluator"):
        criterion.evaluator("nope")
