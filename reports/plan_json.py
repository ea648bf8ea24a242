"""plan.json: the capacity plan as data (schema ``loadgate.plan/1``); JSON has no
Infinity, so an unbounded value is null with its text beside it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis import generator_sizing
from analysis.plan import CapacityPlan

SCHEMA = "loadgate.plan/1"


def _finite(v: float | None) -> float | None:
    """JSON has no Infinity: an unbounded value is null (with the text beside it)."""
    if v is None or not math.isfinite(v):
        return None
    return float(v)


def _pair(ci) -> list[float | None] | None:
    return None if ci is None else [_finite(ci[0]), _finite(ci[1])]


def to_dict(plan: CapacityPlan) -> dict[str, Any]:
    d = plan.demands
    return {
        "schema": SCHEMA,
        "runs": plan.run_ids,
        "profiles": plan.profiles,
        "planning_utilisation": plan.utilisation,
        "reliable": plan.unreliable is None,
        "unreliable": plan.unreliable,
        "measured_gates": [
            {
                "run": g.run_id,
                "phase": g.phase,
                "verdict": g.verdict,
                "gate_load": _finite(g.gate_load),
                "load_unit": g.load_unit,
                "step": g.step,
                "cores": g.cores,
                "cores_from": g.cores_from,
                "shared_cores": _finite(g.shared_cores),
                "basis": "measured",
            }
            for g in plan.measured_gates
        ],
        "basis": "projected",
        "milestones": [
            {
                "milestone": m.milestone,
                "phase": m.phase,
                "users": m.users,
                "target_users": m.target_users,
                "factor_beyond_measured": m.factor,
                "verdict": m.verdict,
                "verdict_text": m.verdict_text,
                "headline": m.headline,
                "tags": m.tags,
                "caveats": m.caveats,
                "basis": "projected",
                "throughput_rps": m.throughput,
                "throughput_ci": _pair(m.throughput_ci),
                "route_rps": m.route_x,
                "binding": None
                if m.binding is None
                else {"resource": m.binding.resource.key, "users": _finite(m.binding.binds_at)},
                "resources": [
                    {
                        "resource": p.resource.key,
                        "label": p.resource.label,
                        "unit": p.resource.unit,
                        "load": p.load,
                        "load_ci": _pair(p.load_ci),
                        "required": p.required,
                        "required_ci": _pair(p.required_ci),
                        "capacity": None
                        if p.capacity is None
                        else {"amount": p.capacity.amount, "section": p.capacity.section},
                        "status": p.status,
                        "binds_at_users": _finite(p.binds_at),
                        "binds_at_ci": _pair(p.binds_at_ci),
                    }
                    for p in m.projections
                ],
            }
            for m in plan.milestones
        ],
        "demands": {
            "basis": "measured",
            "routes": d.routes,
            "route_share": d.route_share,
            "resources": [
                {
                    "resource": f.spec.key,
                    "label": f.spec.label,
                    "source": f.source,
                    "metric": f.metric,
                    "rate_unit": f.spec.rate_unit,
                    "per_request": f.per_request,
                    "per_request_ci": _pair(f.per_request_ci),
                    "background": f.background,
                    "background_ci": _pair(f.background_ci),
                    "r2": f.r2,
                    "seconds": f.seconds,
                    "per_route": {
                        r: {"demand": float(v), "ci": _pair(ci)}
                        for r, v, ci in zip(f.routes, f.demand, f.demand_ci, strict=True)
                    },
                }
                for f in d.resources
            ],
            "personas": [
                {
                    "persona": p.persona,
                    "weight": p.weight,
                    "rate_per_user": p.rate,
                    "ci": _pair(p.ci),
                    "fixed": p.fixed,
                }
                for p in d.personas
            ],
            "bytes_per_request": d.bytes_per_request,
            "missing": d.missing,
        },
        "backtests": [
            {
                "run": b.run_id,
                "fit_steps": b.fit_steps,
                "target_step": b.target_step,
                "users": b.users,
                "rows": [
                    {
                        "quantity": r.quantity,
                        "unit": r.unit,
                        "predicted": r.predicted,
                        "measured": r.measured,
                        "error": r.error,
                        "material": r.material,
                    }
                    for r in b.rows
                ],
                "max_abs_error": b.max_error,
                "material": [r.quantity for r in b.rows if r.material],
                "binding_predicted": b.binding_predicted,
                "binding_measured": b.binding_measured,
            }
            for b in plan.backtests
        ],
        "seed_calculate_capacity": [
            {
                "run": run_id,
                "max_users": f.max_users,
                "p95_ms": f.p95_ms,
                "error_rate": f.error_rate,
                "cpu_usage": f.cpu_usage,
                "cpu_capacity": _finite(f.cpu_capacity),
                "latency_capacity": _finite(f.latency_capacity),
                "error_capacity": _finite(f.error_capacity),
                "result": _finite(f.result),
                "notes": f.notes,
            }
            for run_id, f in plan.seed_formula
        ],
        "generator": generator_sizing.as_json(plan.generator),
        "findings": plan.findings,
        "assumptions": plan.assumptions,
        "warnings": plan.warnings,
    }


def jsonable(obj):
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
