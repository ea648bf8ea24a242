"""``analyze(run)``: every analysis step in order, collected into one AnalysisResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import (
    binding,
    gates,
    headroom,
    incidents,
    lost_writes,
    outcomes,
    saturation,
    step_stats,
    steps,
    timeseries,
    usl,
    validity,
)
from analysis.runs import Run


@dataclass
class AnalysisResult:
    """What reports need; holds no raw records (the Run can be freed)."""

    run_id: str
    phase: int | None
    profile: str | None
    model: str
    manifest: dict[str, Any]
    n_records: int
    start_us: int  # origin of stage offsets and of every time chart
    steps: list[steps.StepStats]
    checks: list[validity.Check]
    knee: saturation.Knee
    usl: usl.USLFit
    headroom: headroom.Headroom
    gate: gates.GateResult
    timeseries: timeseries.TimeSeries
    resources: pd.DataFrame
    faults: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    routes: step_stats.RouteTable | None = None  # whole run per route, steady-state windows
    #: per-route requests, errors and business outcomes over the whole load period
    outcomes: list[outcomes.RouteOutcomes] = field(default_factory=list)
    #: services that stopped answering during the run (incidents.jsonl), drawn on charts
    incidents: list[dict[str, Any]] = field(default_factory=list)
    #: what binds, classified hardware / architecture (issue 20 item 5)
    binding: binding.Binding | None = None

    @property
    def verdict(self) -> str:
        """One of ``runformat.verdicts.Verdict`` (a str)."""
        return self.gate.verdict


def analyze(run: Run, until_us: int | None = None) -> AnalysisResult:
    """Every analysis of a run directory.  ``until_us``: the run is still going and its
    data ends there (``steps.build_steps``); the gate's criterion statuses then say what
    holding the gate step longer could decide (``inconclusive``, ``insufficient data``)."""
    step_list = steps.build_steps(run, until_us)
    step_of = steps.assign_steps(run.events.ts_us, step_list)  # shared by both tables
    stats = step_stats.compute_step_stats(run, step_list, step_of)
    fit = saturation.fit_usl(stats, run.model)
    warns = list(run.warnings)
    if not step_list:
        warns.append("manifest has no hold stages: no steady-state step to analyse")
    checks = validity.run_checks(run, stats)
    for c in checks:
        if c.ok is False:
            warns.append(f"validity: {c.name} at {c.step}: {c.detail}")
    room = headroom.compute_headroom(run, stats, fit)
    gate = gates.evaluate(run, stats, fit, checks)
    lost_writes.apply(gate, run.path)  # lost acknowledged writes are a FAIL
    binds = binding.assess(run, stats, room, gate.gate_load)
    gate.binds = binds.lines
    return AnalysisResult(
        run_id=run.run_id,
        phase=run.phase,
        profile=run.manifest.get("profile"),
        model=run.model,
        manifest=run.manifest,
        n_records=len(run.events),
        start_us=run.start_us,
        steps=stats,
        checks=checks,
        knee=saturation.find_knee(stats),
        usl=fit,
        headroom=room,
        gate=gate,
        timeseries=timeseries.build(run),
        resources=timeseries.resources(run),
        faults=run.faults,
        warnings=warns,
        routes=step_stats.route_table(run, step_list, step_of),
        outcomes=outcomes.route_outcomes(run, *outcomes.load_period(run)),
        incidents=incidents.incidents(run),
        binding=binds,
    )
