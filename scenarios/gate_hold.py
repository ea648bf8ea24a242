"""Hold the gate step past its plan while loadgate says a criterion is undecided.

The plan's last stage is the gate step. When it ends, ``loadgate run`` analyses the
run so far; while a gate criterion is still INCONCLUSIVE or has too little data it
leaves the load at the gate level, re-checking every ~20 s, up to the plan's
``gate_hold_max_s`` (``loadgate.hold``). The two sides share one small file in the run
directory, written atomically by loadgate and read by the Locust master's shape (and
by open-model arrival drivers) once a second:

    locust/gate_hold.json   {"release_at_s": null | seconds, "reason": "..."}

Past the planned end the load keeps going until ``release_at_s`` is set and reached,
or the cap is reached; no file yet means the first check is still running (hold).
A plan with ``gate_hold_max_s = 0`` never holds, so plain Locust use is unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

GATE_HOLD_FILE = "locust/gate_hold.json"


@dataclass(frozen=True)
class HoldControl:
    """loadgate's word on the extended hold: when to stop (None: keep holding) and why."""

    release_at_s: float | None
    reason: str = ""


def read_control(run_dir: Path | str | None) -> HoldControl | None:
    """The current control, or None when loadgate has not written one (yet)."""
    if not run_dir:
        return None
    try:
        data = json.loads((Path(run_dir) / GATE_HOLD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    release = data.get("release_at_s")
    return HoldControl(None if release is None else float(release), str(data.get("reason", "")))


def write_control(run_dir: Path, control: HoldControl) -> None:
    """Write the control atomically (the master reads it every second)."""
    path = Path(run_dir) / GATE_HOLD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"release_at_s": control.release_at_s, "reason": control.reason}))
    tmp.replace(path)


def holding(t: float, planned_end_s: float, cap_s: float, control: HoldControl | None) -> bool:
    """Whether the load stays at the gate level at ``t`` seconds past its start.

    Only past the planned end, only while under the cap, and until loadgate releases.
    """
    if t < planned_end_s or cap_s <= 0 or t >= planned_end_s + cap_s:
        return False
    if control is None or control.release_at_s is None:
        return True
    return t < control.release_at_s
