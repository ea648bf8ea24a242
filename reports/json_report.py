"""Machine-readable report (schema: docs/report-json-schema.md, ``schema`` = loadgate.report/1).

Serialised field by field rather than with ``dataclasses.asdict`` so the schema is stable
when internal dataclasses change, and so NaN/inf never reach the JSON (they become null).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison, EndpointComparison
from analysis.steps import LatencyStats
from reports import fmt

SCHEMA = "loadgate.report/1"
COMPARISON_SCHEMA = "loadgate.comparison/1"


def _f(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        v = float(v)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, tuple | list):
        return [_f(x) for x in v]
    return v


def latency(lat: LatencyStats | None) -> dict | None:
    if lat is None:
        return None
    out: dict[str, Any] = {"n": lat.n, "mean_ms": _f(lat.mean_ms), "max_ms": _f(lat.max_ms)}
    for p, q in lat.percentiles.items():
        out[f"p{round(p * 100)}"] = {
            "value_ms": _f(q.value_ms),
            "ci_ms": _f((q.ci_low_ms, q.ci_high_ms)) if q.has_interval else None,
            "insufficient": q.reason,
        }
    return out


def _binds(b) -> dict[str, Any] | None:
    """What binds, classified (analysis.binding); the sizing is projected, the crossing
    keeps its headroom basis."""
    if b is None:
        return None
    req = b.requirement
    return {
        "constraint": b.constraint.name if b.constraint else None,
        "kind": b.kind,
        "objective": b.objective.name if b.objective else None,
        "lines": b.lines,
        "requirement": None
        if req is None
        else {
            "resource": req.resource,
            "source": req.source,
            "gate_load": _f(req.gate_load),
            "load_unit": req.load_unit,
            "needed": _f(req.needed),
            "needed_ci": _f(req.needed_ci),
            "had": _f(req.had),
            "had_from": req.had_from,
            "planning_line": _f(req.planning_line),
            "basis": "projected",
        },
        "fix": None
        if b.fix is None
        else {"phase": b.fix.phase, "what": b.fix.what, "section": b.fix.section},
    }


def to_dict(r: AnalysisResult) -> dict[str, Any]:
    fit = r.usl
    return {
        "schema": SCHEMA,
        "run": {
            "run_id": r.run_id,
            "phase": r.phase,
            "profile": r.profile,
            "model": r.model,
            "started_at": r.manifest.get("started_at"),
            "ended_at": r.manifest.get("ended_at"),
            "status": r.manifest.get("status"),
            "git_sha": r.manifest.get("git_sha"),
            "seed": r.manifest.get("seed"),
            "records": r.n_records,
        },
        "verdict": str(r.verdict),
        "exit_code": r.gate.exit_code,
        "gate": {
            "load": _f(r.gate.gate_load),
            "load_unit": r.gate.load_unit,
            "step": r.gate.step,
            "reasons": r.gate.reasons,
            "advice": r.gate.advice,
            "lost_files": r.gate.lost_files,
            "host_cpu_percent": _f(r.gate.host_cpu_percent),
            "criteria": [
                {
                    "name": c.name,
                    "description": c.description,
                    "status": c.status,
                    "basis": c.basis,
                    "value": _f(c.value),
                    "ci": _f(c.ci),
                    "load": _f(c.load),
                    "detail": c.detail,
                    "route": c.route,
                }
                for c in r.gate.criteria
            ],
        },
        "steps": [
            {
                "name": st.step.name,
                "load": _f(st.load),
                "users": st.step.users,
                "users_observed": _f(st.users_observed),
                "rate": _f(st.step.rate),
                "start_us": st.step.start_us,
                "end_us": st.step.end_us,
                "truncated_s": _f(st.step.truncated_s),
                "truncation": st.step.truncation,
                "n": st.n,
                "throughput_rps": _f(st.throughput_rps),
                "throughput_ci": _f(fmt.hull(st.throughput_rps, st.throughput_ci)),
                "latency": latency(st.latency),
                "corrected_latency": latency(st.corrected_latency),
                "correction": st.correction_note,
                "error_rate": _f(st.error_rate),
                "error_rate_ci": _f(fmt.hull(st.error_rate, st.error_rate_ci)),
                "errors_by_class": st.errors_by_class,
                "endpoints": [
                    {
                        "endpoint": e.endpoint,
                        "n": e.n,
                        "throughput_rps": _f(e.throughput_rps),
                        "error_rate": _f(e.error_rate),
                        "latency": latency(e.latency),
                    }
                    for e in st.endpoints
                ],
                "resources": {
                    s: {m: _f(v) for m, v in ms.items()} for s, ms in st.resources.items()
                },
            }
            for st in r.steps
        ],
        "validity": [
            {
                "check": c.name,
                "step": c.step,
                "ok": c.ok,
                "observed": _f(c.observed),
                "expected": _f(c.expected),
                "detail": c.detail,
                "decides": c.decides,
            }
            for c in r.checks
        ],
        "saturation": {
            "knee": {"load": _f(r.knee.load), "p95_ms": _f(r.knee.p95_ms), "reason": r.knee.reason},
            "usl": {
                "refused": fit.refused,
                "levels": fit.n_levels,
                "max_measured": _f(fit.max_measured),
                "sigma": _f(fit.sigma),
                "sigma_ci": _f(fit.sigma_ci),
                "kappa": _f(fit.kappa),
                "kappa_ci": _f(fit.kappa_ci),
                "lambda": _f(fit.lam),
                "lambda_ci": _f(fit.lam_ci),
                "n_star": _f(fit.n_star),
                "n_star_ci": _f(fit.n_star_ci),
                "n_star_extrapolated": fit.n_star_extrapolated,
                "peak_note": fit.peak_note,
                "x_max": _f(fit.x_max),
                "x_max_ci": _f(fit.x_max_ci),
                "r2": _f(fit.r2),
            },
        },
        "headroom": {
            "target": _f(r.headroom.target),
            "binding": r.headroom.binding.name if r.headroom.binding else None,
            "sentence": r.headroom.sentence,
            "constraints": [
                {
                    "name": c.name,
                    "limit": c.limit,
                    "basis": c.basis,
                    "load": _f(c.load),
                    "ci": _f(c.ci),
                    "lower_bound": _f(c.lower_bound),
                    "extrapolated": c.extrapolated,
                    "detail": c.detail,
                    "kind": r.binding.kinds.get(c.name) if r.binding else None,
                }
                for c in r.headroom.constraints
            ],
            "binds": _binds(r.binding),
        },
        "routes": None
        if r.routes is None
        else {
            "windows_us": [list(w) for w in r.routes.windows],
            "covered_s": _f(r.routes.covered_s),
            "description": r.routes.description,
            "endpoints": [
                {
                    "endpoint": e.endpoint,
                    "n": e.n,
                    "throughput_rps": _f(e.throughput_rps),
                    "error_rate": _f(e.error_rate),
                    "latency": latency(e.latency),
                }
                for e in r.routes.endpoints
            ],
        },
        "outcomes": [
            {
                "route": o.route,
                "requests": o.requests,
                "errors": o.errors,
                "expected": o.expected,
                "payment_pending": o.payment_pending,
                "codes": o.outcomes,
            }
            for o in r.outcomes
        ],
        "faults": r.faults,
        "incidents": r.incidents,
        "warnings": r.warnings,
    }


def _ep(e: EndpointComparison) -> dict[str, Any]:
    return {
        "endpoint": e.endpoint,
        "n_current": e.n_current,
        "n_baseline": e.n_baseline,
        "median_current_ms": _f(e.median_current_ms),
        "median_baseline_ms": _f(e.median_baseline_ms),
        "hl_shift_ms": _f(e.hl_shift_ms),
        "relative_shift": _f(e.relative_shift),
        "p_value": _f(e.p_value),
        "location_verdict": e.location_verdict,
        "errors": None
        if e.errors is None
        else {
            "errors_current": e.errors.errors_current,
            "errors_baseline": e.errors.errors_baseline,
            "rate_current": _f(e.errors.rate_current),
            "rate_baseline": _f(e.errors.rate_baseline),
            "diff": _f(e.errors.diff),
            "diff_ci": _f(e.errors.diff_ci),
            "p_value": _f(e.errors.p_value),
            "verdict": e.errors.verdict,
        },
        "tails": [
            {
                "p": t.p,
                "current_ms": _f(t.current_ms),
                "current_ci_ms": _f(t.current_ci),
                "baseline_ms": _f(t.baseline_ms),
                "baseline_ci_ms": _f(t.baseline_ci),
                "relative": _f(t.relative),
                "verdict": t.verdict,
            }
            for t in e.tails or []
        ],
        "verdict": e.verdict,
    }


def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "schema": COMPARISON_SCHEMA,
        "run_id": c.run_id,
        "baseline_id": c.baseline_id,
        "tolerance": c.tolerance,
        "alpha": c.alpha,
        "loads": _f(c.loads),
        "verdict": c.verdict,
        "overall": _ep(c.overall),
        "endpoints": [_ep(e) for e in c.endpoints],
    }


def write(r: AnalysisResult, path: Path) -> Path:
    path.write_text(json.dumps(to_dict(r), indent=2, allow_nan=False))
    return path
