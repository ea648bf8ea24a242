"""The capacity plan's tables, built once and rendered to both HTML and Markdown
(``reports.plan_report``) so the two never disagree: each milestone's resources,
throughput per route, the measured demands, per-persona rates, the backtest, the seed's
formula and its infrastructure beside the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis import generator_sizing
from analysis.plan import CapacityPlan, Projection, fmt_amount


@dataclass
class Table:
    title: str
    basis: str  # "measured" | "projected" | "seed" | ""
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _ci(ci: tuple[float, float], unit: str) -> str:
    return f"[{fmt_amount(ci[0], unit)} – {fmt_amount(ci[1], unit)}]"


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
