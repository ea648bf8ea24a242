"""The verdict hook of issue 21: lost acknowledged writes make the verdict FAIL.

``loadgate run`` reconciles every write the service acknowledged with the database
after the load and writes ``verify.json`` (``loadgate.aftercheck``). A write the service
acknowledged and then lost is a measured correctness failure, whatever the load
numbers say, so it overrides every other verdict (PASS, INCONCLUSIVE, INVALID,
PROJECTED, NO GATE) with FAIL and the reason "lost acknowledged writes". Kept apart
from the gate criteria (``analysis.gates``): it is not a criterion of the seed's gate
table but a precondition of any verdict about the plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runformat.verdicts import Verdict

VERIFY_FILE = "verify.json"
REASON = "lost acknowledged writes"


def lost_writes(run_dir: Path) -> dict[str, Any] | None:
    """The run's reconciliation (``verify.json`` ``acknowledged``), None when absent."""
    try:
        data = json.loads((Path(run_dir) / VERIFY_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    acknowledged = data.get("acknowledged")
    return acknowledged if isinstance(acknowledged, dict) else None


def apply(gate: Any, run_dir: Path) -> None:
    """Turn ``gate`` into FAIL, reason first, when the run lost acknowledged writes."""
    found = lost_writes(run_dir)
    violations = (found or {}).get("violations") or []
    if not violations:
        return
    counts = {k: n for k, n in (found.get("counts") or {}).items() if n}
    detail = ", ".join(f"{k} {n}" for k, n in counts.items()) or f"{len(violations)}"
    gate.verdict = Verdict.FAIL
    gate.reasons.insert(0, f"{REASON}: {len(violations)} ({detail}); see verify.json")
    advice = f"run 'loadgate verify --run {Path(run_dir)}' for the ids"
    if advice not in gate.advice:
        gate.advice.insert(0, advice)
