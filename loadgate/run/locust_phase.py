"""The Locust phase of a run: the live view until Locust finishes the plan, the gate
hold, and the load's t = 0 (the master's test start) copied into the manifest.

A load that ended before its plan did is "failed", not "completed": Locust stops a whole
test with exit code 0 when its last worker misses heartbeats (:func:`stopped_early`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from loadgate.hold import GateHold, subprocess_evaluator
from loadgate.live import LiveStats, live_view
from loadgate.locust_cluster import DRAIN_TIMEOUT_S, LocustCluster
from runconfig.phase_config import ResolvedPhase
from runformat import rundir
from scenarios.plan import LoadPlan


def drive(
    cluster: LocustCluster, run_dir: Path, phase: ResolvedPhase, console: Console
) -> tuple[str, str | None]:
    """Show the live view until Locust finishes the plan (bounded by the plan's length and
    the gate hold's cap), holding the gate step while a criterion is undecided."""
    plan = LoadPlan.from_dict(phase.model_dump())
    live = LiveStats(run_dir, plan, cluster.pids)
    hold = GateHold(run_dir, plan.duration_s, plan.gate_hold_max_s, subprocess_evaluator(run_dir))
    deadline = time.monotonic() + plan.duration_s + plan.gate_hold_max_s + DRAIN_TIMEOUT_S + 60
    load_started = False
    try:
        with live_view(live, console) as view:
            while not cluster.finished():
                load_started = load_started or _record_load_start(run_dir)
                if time.monotonic() > deadline:
                    console.print(
                        "[red]Locust did not finish within the plan + gate hold cap + drain "
                        "+ 60 s; stopping it[/red]"
                    )
                    return "timed_out", "Locust did not finish within the plan's length"
                time.sleep(1)
                t = _plan_time(run_dir) if load_started else None
                hold.poll(t)
                live.hold_status = hold.status(t)
                live.refresh()
                view.update(live.render())
        live.refresh()
        _record_load_start(run_dir)
    finally:
        record = hold.finish(_plan_time(run_dir))
        if record and record["extended_s"] > 0:
            console.print(
                f"gate step held {record['extended_s']:.0f} s past its plan "
                f"(cap {record['cap_s']:.0f} s, {record['outcome']}): {record['reason']}",
                markup=False,
            )
    code = cluster.master.returncode if cluster.master else None
    if code not in (0, 1):  # 1: Locust saw failed requests, which analysis judges itself
        return "failed", f"the Locust master exited with code {code}"
    short = stopped_early(run_dir, plan.duration_s)
    return ("failed", short) if short else ("completed", None)


#: A plan that ends this many seconds early has not been run (Locust's own stop takes ~1 s).
EARLY_STOP_TOLERANCE_S = 10.0


def stopped_early(run_dir: Path, plan_s: float, now: datetime | None = None) -> str | None:
    """Why the load ended before the plan did, or None.

    Locust's master stops the whole test, with exit code 0, when its last worker misses
    heartbeats for 3 s: on an overloaded box a run could otherwise end after half a
    minute and still be recorded as "completed".
    """
    try:
        started = json.loads((run_dir / rundir.TEST_START_FILE).read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None  # the load never started: Locust's own exit code and logs say why
    elapsed = ((now or datetime.now(UTC)) - datetime.fromisoformat(started)).total_seconds()
    if elapsed >= plan_s - EARLY_STOP_TOLERANCE_S:
        return None
    return (
        f"Locust stopped after {elapsed:.0f} s of the plan's {plan_s:.0f} s (a worker that "
        "misses heartbeats for 3 s stops the test: an overloaded box or a crashed worker; "
        "see locust/*.log)"
    )


def _plan_time(run_dir: Path) -> float | None:
    """Seconds since the load shape's t = 0 (the master's test start), if known."""
    started = load_start_s(run_dir)
    return None if started is None else time.time() - started


def _record_load_start(run_dir: Path) -> bool:
    """Copy the master's test-start time into the manifest (stage offsets' t = 0)."""
    path = run_dir / rundir.TEST_START_FILE
    try:
        started = json.loads(path.read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return False
    rundir.write_manifest(run_dir, load_started_at=started)
    return True


def load_start_s(run_dir: Path) -> float | None:
    """Epoch seconds of the load's t = 0, once the Locust master has written it."""
    from runformat.manifest import iso_to_us

    try:
        started = json.loads((run_dir / rundir.TEST_START_FILE).read_text())["load_started_at"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return iso_to_us(started) / 1e6
