"""The capacity plan's leadership page: HTML + Markdown, and plan.json (issue 13 item 5).

Verdict first per milestone (ready / needs X / not ready / inconclusive), then the chart of
required capacity vs users, then the tables: each milestone's resources, throughput per
route, the measured demands, per-persona rates, the backtest, the seed's formula and its §7
infrastructure beside the plan, assumptions and what was not measured.  Every number is
tagged *measured* or *projected*.  Same rules as the run report (reports/html.py): inline
CSS, the chart as a data URI, no script, no external reference: the page makes no network
request.

Tables are built once (:func:`tables`) and rendered to both HTML and Markdown, so the two
never disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from analysis import generator_sizing
from analysis.plan import CapacityPlan, Projection, fmt_amount
from reports import plan_charts
from reports.html import CSS, tag
from reports.images import img

SCHEMA = "loadgate.plan/1"
#: A projected "ready" is never drawn as a pass (README "Reading a verdict"): the projected colours.
VERDICT_CLASS = {"ready": "PROJECTED-PASS", "not ready": "PROJECTED-FAIL"}


@dataclass
class Table:
    title: str
    basis: str  # "measured" | "projected" | "seed" | ""
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class PlanPaths:
    html: Path
    md: Path
    json: Path


def _ci(ci: tuple[float, float], unit: str) -> str:
    return f"[{fmt_amount(ci[0], unit)} – {fmt_amount(ci[1], unit)}]"


def _verdict_class(m) -> str:
    """A qualified "ready" (more cores assumed, unreliable) is not drawn in the pass colour."""
    return "PROJECTED" if m.tags else VERDICT_CLASS.get(m.verdict, "PROJECTED")


def _users(v: float | None) -> str:
    if v is None:
        return "—"
    return "never (no growth with users)" if not math.isfinite(v) else f"{v:,.0f}"


def _binds(p: Projection) -> str:
    if p.binds_at is None:
        return "—"
    text = _users(p.binds_at)
    if p.binds_at_ci is not None:
        lo, hi = p.binds_at_ci
        text += f" [{_users(lo)} – {_users(hi)}]"
    return text


def verdict_rows(plan: CapacityPlan) -> list[list[str]]:
    rows = []
    for m in plan.milestones:
        b = m.binding
        first = (
            f"{b.resource.label} at {_users(b.binds_at)} users" if b is not None else "none stated"
        )
        rows.append(
            [
                m.milestone,
                f"{m.users:,} users (target {m.target_users:,}; {m.factor:,.0f}x measured)",
                m.headline,
                " ".join([m.verdict_text, *m.caveats]),
                first,
            ]
        )
    return rows


def tables(plan: CapacityPlan) -> list[Table]:
    d = plan.demands
    out = []
    for m in plan.milestones:
        rows = []
        for p in m.projections:
            u = p.resource.unit
            cap = p.capacity
            rows.append(
                [
                    p.resource.label,
                    f"{fmt_amount(p.load, u)} {_ci(p.load_ci, u)}",
                    f"{fmt_amount(p.required, u)} {_ci(p.required_ci, u)}",
                    "not stated in the seed"
                    if cap is None
                    else f"{fmt_amount(cap.amount, u)} ({_cited(cap)})",
                    p.status,
                    _binds(p),
                ]
            )
        out.append(
            Table(
                f"{m.milestone} — phase {m.phase}, {m.users:,} users (gate load, §8.4); profile "
                f"{m.profile}; throughput {m.throughput:,.0f} req/s "
                f"[{m.throughput_ci[0]:,.0f} – {m.throughput_ci[1]:,.0f}]",
                "projected",
                [
                    "resource",
                    "load at milestone [95% CI]",
                    f"required at {plan.utilisation:.0%} [95% CI]",
                    "seed capacity",
                    "status",
                    "binds at (users) [95% CI]",
                ],
                rows,
                _pool_note(plan),
            )
        )
    out.append(
        Table(
            "Load generator: Locust worker cores per milestone",
            "projected",
            generator_sizing.HEADER,
            generator_sizing.rows(plan.generator),
            generator_sizing.NOTE,
        )
    )
    out.append(
        Table(
            "Throughput per route at each milestone (req/s)",
            "projected",
            ["route", "measured share", *[m.milestone for m in plan.milestones]],
            [
                [
                    r,
                    f"{d.route_share.get(r, 0):.1%}",
                    *[f"{m.route_x.get(r, 0):,.1f}" for m in plan.milestones],
                ]
                for r in d.routes
            ],
        )
    )
    demand_rows = []
    for f in d.resources:
        s = f.spec
        demand_rows.append(
            [
                s.label,
                f"{f.source} {f.metric}",
                f"{f.per_request * s.display:,.3g} {s.demand_unit} "
                f"[{f.per_request_ci[0] * s.display:,.3g} – "
                f"{f.per_request_ci[1] * s.display:,.3g}]",
                f"{f.background:,.3g} {s.rate_unit} "
                f"[{f.background_ci[0]:,.3g} – {f.background_ci[1]:,.3g}]",
                f"{f.r2:.2f}",
                f"{f.seconds} s (HAC lags {f.maxlags})",
            ]
        )
    out.append(
        Table(
            "Service demands per request (all routes pooled)",
            "measured",
            ["resource", "samples", "per request [95% CI]", "background", "R²", "fitted"],
            demand_rows,
            "Regression of each second's busy rate on that second's throughput "
            "(statsmodels OLS, Newey–West covariance) over the steady-state steps.",
        )
    )
    per_route = []
    for f in d.resources:
        s = f.spec
        for r, v, ci in zip(f.routes, f.demand, f.demand_ci, strict=True):
            per_route.append(
                [
                    s.label,
                    r,
                    f"{v * s.display:,.3g} {s.demand_unit}",
                    f"[{ci[0] * s.display:,.3g} – {ci[1] * s.display:,.3g}]",
                ]
            )
    out.append(
        Table(
            "Service demands per route",
            "measured",
            ["resource", "route", "demand per request", "95% CI"],
            per_route,
            " ".join(n for f in d.resources for n in f.notes),
        )
    )
    out.append(
        Table(
            "Per-user request rate by persona",
            "measured",
            ["persona", "share of users in the run", "requests/s per user [95% CI]"],
            [
                [
                    p.persona,
                    "fixed (one operator)" if p.fixed else f"{p.weight:.0%}",
                    f"{p.rate:.4f} [{p.ci[0]:.4f} – {p.ci[1]:.4f}]"
                    + (" (whole persona)" if p.fixed else ""),
                ]
                for p in d.personas
            ],
            "Interval: Student's t across steady-state steps.",
        )
    )
    for b in plan.backtests:
        out.append(
            Table(
                f"Backtest on {b.run_id}: fitted on {', '.join(b.fit_steps)}, predicting "
                f"{b.target_step} ({b.users:,.0f} users)",
                "measured",
                ["quantity", "predicted", "measured", "error"],
                [
                    [
                        r.quantity,
                        fmt_amount(r.predicted, r.unit),
                        fmt_amount(r.measured, r.unit),
                        ("—" if r.error is None else f"{r.error:+.1%}")
                        + ("" if r.material else " (not counted)"),
                    ]
                    for r in b.rows
                ]
                + [
                    [
                        "binding constraint",
                        str(b.binding_predicted),
                        str(b.binding_measured),
                        "match" if b.binding_predicted == b.binding_measured else "MISMATCH",
                    ]
                ],
                b.note + "; not counted in the largest error: resources the run's stack had "
                "no capacity for, or used at under 2 % of it",
            )
        )
    for run_id, f in plan.seed_formula:
        out.append(
            Table(
                f"The seed's calculateCapacity (§6.5) on {run_id}",
                "measured",
                ["input / term", "value"],
                [
                    ["maxUsers (highest steady step)", f"{f.max_users:,.0f}"],
                    ["p95Latency", "—" if f.p95_ms is None else f"{f.p95_ms:,.0f} ms"],
                    ["errorRate", f"{f.error_rate:.4%}"],
                    [
                        "cpuUsage",
                        "—" if f.cpu_usage is None else f"{f.cpu_usage:.1f} % ({f.cpu_source})",
                    ],
                    ["cpuCapacity", _js(f.cpu_capacity)],
                    ["latencyCapacity", _js(f.latency_capacity)],
                    ["errorCapacity", _js(f.error_capacity)],
                    ["calculateCapacity = min", _js(f.result)],
                ],
                " ".join(f.notes),
            )
        )
    side = []
    for m in plan.milestones:
        need = "; ".join(
            f"{p.resource.label} {fmt_amount(p.required, p.resource.unit)}"
            for p in m.projections
            if p.resource.unit in ("cores", "connections", "bytes")
            or p.resource.key == "stripe_rps"
        )
        side.append(
            [
                f"{m.milestone} (phase {m.phase})",
                f"{m.target_users:,}",
                f"${m.seed.monthly_cost_usd:,}",
                m.seed.infrastructure,
                need,
            ]
        )
    out.append(
        Table(
            "The seed's per-phase infrastructure (§7.1 cost by phase, §7.2, phase sections) "
            "beside what the plan says each phase needs",
            "projected",
            [
                "milestone",
                "seed users",
                "§7.1 monthly cost",
                "seed plans",
                "plan needs (projected)",
            ],
            side,
        )
    )
    return out


def _pool_note(plan: CapacityPlan) -> str:
    """DB connections are judged against the seed's pool; the run's own pool beside it."""
    pool = plan.profile_pool
    own = (
        f"the run's profile had a pool of {pool:,.0f} connections"
        if pool
        else "the run's pool size was not sampled"
    )
    return (
        f"DB connections in use by Little's law (throughput x hold time): {own}. Stripe: "
        f"{plan.stripe_limit.amount:,.0f} req/s ({plan.stripe_limit.section})."
    )


def _cited(cap) -> str:
    return f"{cap.section}; {cap.note}" if cap.note else cap.section


def _js(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return f"{v:,.0f} users"


def _tag(basis: str) -> str:
    """Only measured and projected numbers are labelled here (a seed figure is cited)."""
    return tag(basis) if basis in ("measured", "projected") else ""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in t.rows
    )
    note = f'<p class="meta">{escape(t.note)}</p>' if t.note else ""
    return f"<h3>{escape(t.title)} {_tag(t.basis)}</h3><table><tr>{head}</tr>{body}</table>{note}"


def _img(png: bytes | str) -> str:
    if isinstance(png, str):
        return f'<p class="warn">{escape(png)}</p>'
    return img(png, "required capacity per resource vs users")


def render_html(plan: CapacityPlan, chart: bytes | str) -> str:
    cards = "".join(
        f'<div class="verdict v-{_verdict_class(m)}">'
        f'<div class="big">{escape(m.milestone)}: {escape(m.headline)} (projected)</div>'
        f"<p>{m.users:,} users (phase {m.phase} gate load) · {_tag('projected')} · "
        f"{escape(m.verdict_text)}</p>"
        + "".join(f'<p class="warn">{escape(c)}</p>' for c in m.caveats)
        + ""
        f"<p>First to bind: {escape(row[4])}</p></div>"
        for m, row in zip(plan.milestones, verdict_rows(plan), strict=True)
    )
    title = ", ".join(f"{m.milestone} {m.headline}" for m in plan.milestones)
    lists = "".join(
        f"<h2>{escape(title)}</h2><ul>" + "".join(f"<li>{escape(x)}</li>" for x in items) + "</ul>"
        for title, items in (
            ("Where the seed and the measurement disagree", plan.findings),
            ("Assumptions (and where they break)", plan.assumptions),
            ("Not measured (never invented)", plan.demands.missing),
            ("Warnings", plan.warnings),
        )
        if items
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgate capacity plan — {escape(title)}</title>
<style>{CSS} h3{{font-size:14px;margin:18px 0 4px}}</style></head>
<body><main>
<h1>Blue Harvests — capacity plan for {escape(", ".join(m.milestone for m in plan.milestones))}</h1>
<div class="meta">from run(s) {escape(", ".join(plan.run_ids))} · profile(s)
{escape(", ".join(sorted(set(plan.profiles))))} · planning utilisation {plan.utilisation:.0%}
(seed §6.3 HPA target) · every milestone number is {_tag("projected")} from demands
{_tag("measured")} on this machine</div>
{f'<p class="warn">{escape(plan.unreliable)}</p>' if plan.unreliable else ""}
{cards}
<h2>Required capacity vs users</h2>{_img(chart)}
{"".join(_html_table(t) for t in tables(plan))}
{lists}
<p class="meta">Demands: statsmodels OLS with Newey–West (HAC) intervals on 1 Hz samples
of steady-state steps; milestone intervals by drawing the demands and per-user rates
together. <i>measured</i> = from the run; <i>projected</i> = operational laws applied beyond
the measured load, never a measurement.</p>
</main></body></html>
"""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: CapacityPlan) -> str:
    lines = [
        "## loadgate capacity plan — "
        + ", ".join(f"{m.milestone} **{m.headline}**" for m in plan.milestones),
        "",
        f"From run(s) `{', '.join(plan.run_ids)}`; every milestone number is *projected* from "
        f"demands *measured* on this machine; planning utilisation {plan.utilisation:.0%}.",
        "",
        *([f"**{plan.unreliable}**", ""] if plan.unreliable else []),
        "| milestone | load | verdict (projected) | why | first to bind |",
        "|---|---|---|---|---|",
        *["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in verdict_rows(plan)],
        "",
    ]
    for t in tables(plan):
        lines += [f"### {t.title} ({t.basis})" if t.basis else f"### {t.title}", ""]
        lines.append("| " + " | ".join(t.header) + " |")
        lines.append("|" + "---|" * len(t.header))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        if t.note:
            lines += ["", t.note]
        lines.append("")
    for title, items in (
        ("Where the seed and the measurement disagree", plan.findings),
        ("Assumptions (and where they break)", plan.assumptions),
        ("Not measured (never invented)", plan.demands.missing),
        ("Warnings", plan.warnings),
    ):
        if items:
            lines += [f"### {title}", "", *[f"- {x}" for x in items], ""]
    return "\n".join(lines)


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


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write(plan: CapacityPlan, out_dir: Path) -> PlanPaths:
    """plan.html, plan.md and plan.json into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = plan_charts.chart_or_reason(plan)
    if isinstance(chart, str):
        plan.warnings.append(chart)
    paths = PlanPaths(out_dir / "plan.html", out_dir / "plan.md", out_dir / "plan.json")
    paths.html.write_text(render_html(plan, chart), encoding="utf-8")
    paths.md.write_text(render_markdown(plan), encoding="utf-8")
    paths.json.write_text(json.dumps(_jsonable(to_dict(plan)), indent=2, allow_nan=False))
    return paths


__all__ = ["PlanPaths", "render_html", "render_markdown", "to_dict", "write"]
