"""Hold the gate step until its criteria are decided, up to a cap.

A gate step that ends with a criterion still INCONCLUSIVE (its interval straddles the
limit) or short of data is usually decided by a little more of the same load, so
stopping there wastes the run. At the end of the planned gate hold :class:`GateHold`
analyses the run so far with the ordinary analysis (``analysis.analyze``, in a nice'd
subprocess so the generator's CPU goes to Locust first); while a criterion is undecided
the Locust shape keeps the gate load (:mod:`scenarios.gate_hold`), and the run is
re-checked every :data:`RECHECK_S` seconds up to the plan's ``gate_hold_max_s``.

The manifest then shows the gate stage's real length (``config.stages[-1].end_s``) so
analysis sees the extended hold, and ``gate_hold`` records how long and why
(docs/run-directory.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runformat import rundir
from scenarios.gate_hold import HoldControl, write_control

#: Seconds between two checks of an extended hold (one check of a phase-1 run takes a
#: few seconds of a niced subprocess; more often would only add analysis load).
RECHECK_S = 20.0
#: Seconds a check looks behind the load's clock: events are flushed every 2 s and
#: counters need a sample after the window's end, so the newest seconds are not yet on
#: disk (a check of "now" saw them as missing data and counters as undecided).
DATA_LAG_S = 5.0
#: Longest a check may take before the hold gives up on it (then it releases).
CHECK_TIMEOUT_S = 120.0
#: The check's niceness: Locust's processes (nice 0) weigh ~10x more on the generator's
#: CPUs, while a check still finishes within a recheck period on a busy 2-core host.
CHECK_NICE = 10

Evaluator = Callable[[float], list[str]]
"""Gate stage end (plan seconds) → the undecided criteria ("p95_ms: inconclusive");
raises when the run cannot be analysed."""


@dataclass
class HoldCheck:
    at_s: float
    """The gate stage's end the check analysed (plan seconds)."""
    undecided: list[str]
    error: str | None = None


@dataclass
class GateHold:
    """The decision loop: call :meth:`poll` about once a second with the plan time."""

    run_dir: Path
    planned_end_s: float
    cap_s: float
    evaluate: Evaluator
    recheck_s: float = RECHECK_S
    background: bool = True
    """Run checks on a thread (the live view keeps refreshing); tests run them inline."""
    checks: list[HoldCheck] = field(default_factory=list)
    release_at_s: float | None = None
    outcome: str | None = None
    """None while undecided; "decided", "cap reached", "check failed" or "not needed"."""
    _next_at: float = field(default=0.0, init=False)
    _pending: threading.Thread | None = field(default=None, init=False)
    _result: HoldCheck | None = field(default=None, init=False)
    _cut_short: bool = field(default=False, init=False)
    """The cap came while a check was still running (its answer is not known)."""

    @property
    def active(self) -> bool:
        return self.cap_s > 0 and self.outcome is None

    def poll(self, t: float | None) -> None:
        """Advance the loop at plan time ``t`` (None: the load has not started)."""
        if not self.active or t is None or t < self.planned_end_s:
            return
        if self._pending is not None and self._pending.is_alive():
            if t >= self.planned_end_s + self.cap_s:
                self.outcome = "cap reached"  # the shape stops by itself at the cap
                self._cut_short = True
            return
        if self._result is not None:
            result, self._result, self._pending = self._result, None, None
            self._handle(result, t)
            if not self.active:
                return
        if t >= self.planned_end_s + self.cap_s:
            self.outcome = "cap reached"
            return
        data_until = t - DATA_LAG_S  # what is on disk by now
        if self._pending is None and t >= self._next_at and data_until >= self.planned_end_s:
            self._start(self.planned_end_s if not self.checks else data_until, t)

    def _start(self, gate_end_s: float, t: float) -> None:
        # The manifest is written here, on the caller's thread (the only manifest writer
        # during the load), so the check analyses the gate stage up to ``gate_end_s``.
        set_gate_end(self.run_dir, gate_end_s)
        if not self.background:
            self._handle(self._check(gate_end_s), t)
            return
        thread = threading.Thread(target=self._run, args=(gate_end_s,), daemon=True)
        self._pending = thread
        thread.start()

    def _run(self, gate_end_s: float) -> None:
        self._result = self._check(gate_end_s)

    def _check(self, gate_end_s: float) -> HoldCheck:
        try:
            return HoldCheck(round(gate_end_s, 1), list(self.evaluate(gate_end_s)))
        except Exception as exc:  # noqa: BLE001 - a broken check must not hold the load
            return HoldCheck(round(gate_end_s, 1), [], f"{type(exc).__name__}: {exc}")

    def _handle(self, check: HoldCheck, t: float) -> None:
        self.checks.append(check)
        if check.error or not check.undecided:
            self.outcome = "check failed" if check.error else "decided"
            self.release_at_s = check.at_s
            write_control(self.run_dir, HoldControl(check.at_s, self.reason))
            return
        write_control(self.run_dir, HoldControl(None, self.reason))
        self._next_at = t + self.recheck_s

    @property
    def reason(self) -> str:
        """Why the gate step was (or is being) held past its plan."""
        if not self.checks:
            return "the cap came before the first check finished" if self._cut_short else ""
        last = self.checks[-1]
        if last.error:
            return f"check failed ({last.error}): released"
        undecided = next((c.undecided for c in reversed(self.checks) if c.undecided), [])
        return "undecided: " + ", ".join(undecided) if undecided else ""

    def end_s(self) -> float:
        """The gate stage's real end: where the deciding check looked, or the cap."""
        if self.release_at_s is not None:
            return self.release_at_s
        if self.outcome == "cap reached":
            return self.planned_end_s + self.cap_s
        return self.checks[-1].at_s if self.checks else self.planned_end_s

    def status(self, t: float | None) -> str | None:
        """One phrase for the live view while the hold is extended, else None."""
        if self.cap_s <= 0 or t is None or t < self.planned_end_s:
            return None
        if self.outcome is not None and self.outcome != "cap reached":
            return None
        extra = min(t, self.planned_end_s + self.cap_s) - self.planned_end_s
        if not self.checks:
            return f"gate held +{extra:.0f}/{self.cap_s:.0f} s (checking the gate step)"
        if not self.checks[-1].undecided:
            return None
        return f"gate held +{extra:.0f}/{self.cap_s:.0f} s ({self.reason})"

    def record(self) -> dict[str, Any]:
        """The manifest's ``gate_hold`` field (docs/run-directory.md)."""
        end = self.end_s()
        return {
            "planned_end_s": self.planned_end_s,
            "cap_s": self.cap_s,
            "end_s": round(end, 1),
            "extended_s": round(max(0.0, end - self.planned_end_s), 1),
            "outcome": self.outcome or ("not needed" if not self.checks else "stopped"),
            "reason": self.reason or None,
            "checks": [asdict(c) for c in self.checks],
        }

    def finish(self, t: float | None = None) -> dict[str, Any] | None:
        """Write the gate stage's real end and the ``gate_hold`` record once the load has
        stopped at plan time ``t``; None if the plan has no hold."""
        if self.cap_s <= 0:
            return None
        if self.outcome is None and not self.checks:
            self.outcome = "not needed"  # the load ended before the first check
        elif self.outcome is None:  # still undecided when the load stopped
            cap_end = self.planned_end_s + self.cap_s
            stopped = cap_end if t is None else min(t, cap_end)
            self.outcome = "cap reached" if stopped >= cap_end - 1.0 else "stopped"
            self.release_at_s = max(self.checks[-1].at_s, stopped)
        record = self.record()
        set_gate_end(self.run_dir, self.end_s(), gate_hold=record)
        return record


def set_gate_end(run_dir: Path, end_s: float, **fields: Any) -> None:
    """Make the manifest's last stage (the gate step) end at ``end_s`` plan seconds."""
    from runformat.manifest import read_manifest

    config = dict(read_manifest(run_dir).config)
    stages = [dict(s) for s in config.get("stages", [])]
    if stages:
        stages[-1]["end_s"] = round(end_s, 3)
        config["stages"] = stages
    rundir.write_manifest(run_dir, config=config, **fields)


# --- the real evaluator: the ordinary analysis, in a nice'd subprocess ----------------


def undecided_criteria(run_dir: Path) -> list[str]:
    """Gate criteria of the run so far that are INCONCLUSIVE or short of data.

    Only when the gate load was applied (analysis found a gate step): below it, more of
    the same load cannot decide a criterion measured at the gate load."""
    from analysis.analyze import analyze
    from analysis.criterion import FAIL
    from analysis.runs import load_run
    from runformat.verdicts import Verdict

    result = analyze(load_run(run_dir))
    # A criterion measured on the wrong side decides the verdict already. Asked of the
    # criteria, not of the verdict: during the load the run is not yet completed, so
    # its verdict is INVALID (incomplete) however clearly a criterion failed.
    failed = any(c.status == FAIL and c.basis == "measured" for c in result.gate.criteria)
    if failed or result.gate.verdict is Verdict.FAIL:
        return []
    return [f"{c.description}: {c.status}" for c in result.gate.undecided]


def subprocess_evaluator(run_dir: Path, timeout_s: float = CHECK_TIMEOUT_S) -> Evaluator:
    """An :data:`Evaluator` that analyses in ``python -m loadgate.hold RUN``, niced:
    the harness and Locust share the generator's CPUs, and Locust comes first."""

    def evaluate(_gate_end_s: float) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "loadgate.hold", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            preexec_fn=lambda: os.nice(CHECK_NICE),
            cwd=rundir.REPO_ROOT,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"analysis exited {done.returncode}: {tail}")
        return list(json.loads(done.stdout.strip().splitlines()[-1]))

    return evaluate


if __name__ == "__main__":  # python -m loadgate.hold RUN_DIR: one check, JSON on stdout
    print(json.dumps(undecided_criteria(Path(sys.argv[1]))))
