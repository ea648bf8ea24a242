"""The verdict hook: lost acknowledged writes in ``verify.json`` make the verdict FAIL."""

from __future__ import annotations

import json

from analysis import analyze, load_run
from runformat.verdicts import Verdict


def _verify(run_dir, violations: list[str]) -> None:
    acknowledged = {
        "recorded": True,
        "acknowledged": {"cart_add": 40, "order": 12},
        "skipped": {},
        "counts": {"lost-order": 0, "lost-cart": len(violations)},
        "violations": violations,
    }
    body = {"ok": not violations, "violations": violations, "lost_writes": len(violations),
            "acknowledged": acknowledged}  # fmt: skip
    (run_dir / "verify.json").write_text(json.dumps(body))


def test_lost_writes_override_the_verdict_with_fail(base_run_dir, base_result, copy_run) -> None:
    assert base_result.verdict != Verdict.FAIL
    d = copy_run(base_run_dir)
    _verify(d, ["lost-cart consumer=3 product=7: 4 unit(s) acknowledged, 3 in orders"])
    gate = analyze(load_run(d)).gate
    assert gate.verdict == Verdict.FAIL
    assert gate.reasons[0].startswith("lost acknowledged writes: 1 (lost-cart 1)")
    assert gate.exit_code == 1


def test_a_clean_or_absent_check_changes_nothing(base_run_dir, base_result, copy_run) -> None:
    d = copy_run(base_run_dir)
    _verify(d, [])
    assert analyze(load_run(d)).verdict == base_result.verdict
