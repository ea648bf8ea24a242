"""Unplanned incidents of a run, read for the verdict.

``loadgate.incidents`` watches the services during the load and writes
``incidents.jsonl`` (orchestration: probes in a thread); reading that file back and
judging an incident against the gate window is analysis, here.  An incident is a service
that stopped answering when no fault targeted it; one during the gate window makes the
verdict INVALID (``analysis.gates``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis.runs import Run
from runformat.rundir import INCIDENTS_FILE


def read_records(path: Path) -> list[dict[str, Any]]:
    """A ``*.jsonl`` whose records carry an ``id``: the last line of an id is its state
    (faults and incidents are rewritten as they change). Non-JSON lines are skipped."""
    if not path.exists():
        return []
    latest: dict[Any, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            latest[record.get("id", f"line{number}")] = record
    return list(latest.values())


def incidents(run: Run) -> list[dict[str, Any]]:
    """Every incident of the run, each at its latest state."""
    return read_records(Path(run.path) / INCIDENTS_FILE)


def unplanned_incidents(run: Run) -> list[dict[str, Any]]:
    """Incidents no injected fault explains (``planned`` marks those it does)."""
    return [i for i in incidents(run) if not i.get("planned")]


def incident_text(incident: dict[str, Any], origin_us: int) -> str:
    """One line beside the verdict: which service, when, how long, its last log line."""
    at = (int(incident.get("start_us") or origin_us) - origin_us) / 1e6
    end = incident.get("end_us")
    lasted = f"for {(end - incident['start_us']) / 1e6:.0f} s" if end else "until the end"
    last = next((line for line in reversed(incident.get("log_tail") or []) if line.strip()), "")
    tail = f"; last log line: {last.strip()[:160]}" if last else ""
    return (
        f"{incident.get('service')} stopped answering at {at:.0f} s, {lasted} "
        f"({incident.get('reason', '')}){tail}"
    )


def overlaps(incident: dict[str, Any], start_us: int, end_us: int, run_end_us: int) -> bool:
    """Whether the incident touches [start_us, end_us); an open one lasts the run."""
    begin = int(incident.get("start_us") or 0)
    finish = int(incident.get("end_us") or run_end_us)
    return begin < end_us and finish > start_us
